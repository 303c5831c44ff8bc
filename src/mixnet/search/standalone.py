"""A net of the search trained on its own: the run configuration shared by the ranking check and the retraining.

Every standalone run uses the frozen cluttered-digits recipe on the search's
data, image size and crops, with paired seeds (``seeded_augmentation``): two nets trained with one seed see
the same data in the same order with the same augmentation.
"""

from __future__ import annotations

from pathlib import Path

from mixnet.experiment.runs import recipe

RECIPE = "cluttered-digits"


def train_config(cfg, run_dir: Path, seed: int, arch: str | None = None, width: float | None = None, **extra):
    """A standalone run's configuration: the cluttered-digits recipe on the search's data, size and crops,
    ``retrain_epochs`` long; ``extra`` overrides any option (the ranking check's shorter ``epochs``)."""
    options = dict(
        data=cfg.data,
        img_size=cfg.img_size,
        model=cfg.skeleton,
        arch=arch,
        width_mult=width,
        epochs=cfg.retrain_epochs,
        crop_scale=tuple(cfg.crop_scale),
        crop_pct=cfg.crop_pct,
        seed=seed,
        threads=cfg.threads,
        workers=cfg.workers,
        device=cfg.device,
        out=str(run_dir),
        progress=False,
        seeded_augmentation=True,  # paired seeds across the standalone nets
    )
    return recipe(RECIPE).config(**{**options, **extra})

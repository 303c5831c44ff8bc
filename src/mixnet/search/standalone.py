"""A net of the search trained on its own: the run configuration and the trainer shared by the ranking check,
the halving rungs and the retraining.

Every standalone run uses the frozen cluttered-digits recipe on the search's
data, image size and crops, with paired seeds (``seeded_augmentation``): two nets trained with one seed see
the same data in the same order with the same augmentation. ``jobs`` of them train at once, each in a worker
process (:mod:`mixnet.experiment.pool`), and only this process writes their rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mixnet.experiment.pool import gpu_groups, run_parallel
from mixnet.experiment.rows import append_row
from mixnet.experiment.runs import recipe, run_one

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
        threads=cfg.threads or (1 if cfg.jobs > 1 else 0),  # runs side by side: one core each
        workers=cfg.workers,
        device=cfg.device,
        out=str(run_dir),
        progress=False,
        seeded_augmentation=True,  # paired seeds across the standalone nets
    )
    return recipe(RECIPE).config(**{**options, **extra})


@dataclass(frozen=True)
class StandaloneRun:
    """One standalone training to do.

    Attributes:
        run_dir: its folder.
        make: builds its TrainConfig (a ``functools.partial`` of :func:`train_config`: it is sent to a worker).
        row: the fields that name it in its rows file (``run`` first).
        cost: its expected cost (its MACs: the runs of one call train equally long), dearest first.
    """

    run_dir: Path
    make: Callable
    row: dict
    cost: float = 0.0


def _train(run: StandaloneRun) -> dict:
    return run_one(run.run_dir, run.make, run.row)


def train_standalone(cfg, runs: Sequence[StandaloneRun], rows_path: Path, log, what: str) -> dict[str, dict]:
    """Trains ``runs`` (``cfg.jobs`` at once), appending each row to ``rows_path`` as it ends; returns run -> row."""
    if cfg.jobs > 1 and len(runs) > 1:
        jobs = min(cfg.jobs, len(runs))
        log(f"{what}: {len(runs)} standalone runs, {jobs} at a time")
        groups = gpu_groups(jobs, 1, cfg.device)
        finished = run_parallel(_train, runs, jobs, priority=lambda r: r.cost, device_groups=groups)
    else:
        finished = _in_turn(runs, log, what)
    rows = {}
    with contextlib.closing(finished):  # a failure here stops the workers at once
        for i, (_, row) in enumerate(finished, 1):
            append_row(rows_path, row)
            rows[row["run"]] = row
            log(f"{what}: {row['run']} ({i}/{len(runs)}): {row.get('top1', row.get('error'))}")
    return rows


def _in_turn(runs: Sequence[StandaloneRun], log, what: str):
    for i, run in enumerate(runs, 1):
        log(f"{what}: training {run.row['run']} ({i}/{len(runs)}) ...")
        yield run, _train(run)

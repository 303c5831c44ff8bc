"""One training run of an experiment: a recipe, :func:`mixnet.train.train`, and one result row.

A study's variant and a search's retrained net are the same thing: a :class:`~mixnet.train.TrainConfig`
built from a recipe (a preset and its overrides), trained in this process or under torchrun, resumed from
its last checkpoint when one is there, and recorded as one row with the run's final metrics. A run that
raises is recorded as failed with its error, and the experiment goes on.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mixnet.errors import MixnetError
from mixnet.experiment.rows import append_row
from mixnet.train.checkpoint import CHECKPOINT_NAME
from mixnet.train.config import TrainConfig

# Packages whose version can change a seeded run's numbers (kernels, image resampling, the split, the digits).
# Each row records them and the CPU: a seeded run reproduces bit for bit only with the same ones (torch's CPU
# kernels round differently on another CPU model, and training amplifies the difference).
TRAINING_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "scikit-learn", "mlxtend")


@dataclass(frozen=True)
class Recipe:
    """A training recipe: a preset of :data:`mixnet.train.config.PRESETS` with overrides of its options.

    Attributes:
        preset: the preset the options apply to.
        options: TrainConfig fields that replace the preset's.
    """

    preset: str
    options: Mapping = field(default_factory=dict)

    def config(self, **fields) -> TrainConfig:
        """The TrainConfig of one run: the recipe with ``fields`` (model, data, seed, out, ...) on top."""
        return TrainConfig.from_preset(self.preset, **{**self.options, **fields})


# Short runs on the built-in cluttered digits (60x60 canvases resized to 40 px): the search's standalone
# runs (its ranking check and its retraining) train with it.
RECIPES: dict[str, Recipe] = {
    "cluttered-digits": Recipe(
        "short",
        {
            "epochs": 14,
            "batch_size": 64,
            "lr": 0.006,
            "hflip": 0.0,  # digits are not mirror-symmetric
            "crop_scale": (0.8, 1.0),  # mild crops: a strong crop would cut the digit out of its canvas
            "crop_pct": 1.0,  # evaluate on the whole canvas
            "ema_decay": 0.99,  # a few hundred steps: a fast EMA
            "eval_ema_only": True,  # the EMA is the result: the raw weights are evaluated after the last epoch
        },
    ),
}


# The kernel study `small` on the built-in cued digits (48 px): chosen on a pilot of the k3 baseline alone
# (lr 0.002..0.032, 8..20 epochs; docs/study/pilot) and frozen for every variant: the short preset with the
# piloted lr and epochs, no crops or flips (the label is where the cue and the digits lie), a fast EMA.
RECIPES["cued-digits"] = Recipe(
    "short",
    {
        "epochs": 12,
        "batch_size": 64,
        "lr": 0.008,
        "hflip": 0.0,
        "crop_scale": (1.0, 1.0),
        "crop_pct": 1.0,
        "ema_decay": 0.99,
        "eval_ema_only": True,
    },
)


def recipe(name: str) -> Recipe:
    """A named recipe of :data:`RECIPES`.

    Raises:
        ValueError: an unknown name (the known ones are listed).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
    return RECIPES[name]


def final_metrics(history: Sequence[dict]) -> dict:
    """A run's result: top-1 and top-5 on the held-out split after its last epoch, of the EMA weights when the
    recipe keeps an EMA, and the epochs it trained."""
    last = history[-1]
    if last.get("ema_val_top1") is not None:
        top1, top5 = last["ema_val_top1"], last.get("ema_val_top5")
    else:
        top1, top5 = last["val_top1"], last.get("val_top5")
    return {"top1": float(top1), "top5": None if top5 is None else float(top5), "epochs": len(history)}


def learning_curve(history: Sequence[dict]) -> list[dict]:
    """Per epoch: the training loss and the held-out top-1 that :func:`final_metrics` reports (EMA when kept)."""
    out = []
    for row in history:
        top1 = row.get("ema_val_top1")
        top1 = row.get("val_top1") if top1 is None else top1
        out.append(
            {
                "epoch": int(row["epoch"]),
                "train_loss": float(row["train_loss"]),
                "val_top1": None if top1 is None else float(top1),
            }
        )
    return out


def metrics_of(result) -> dict:
    """The final metrics of a :class:`mixnet.train.TrainResult` (rank 0's: the others keep no history), with its
    learning curve (``history``)."""
    return {
        **final_metrics(result.history),
        "classes": len(result.class_names),
        "history": learning_curve(result.history),
    }


def train_in_process(config: TrainConfig) -> dict:
    """Trains one run here; returns its final metrics."""
    from mixnet.train import train

    return metrics_of(train(config))


def train_with_torchrun(config: TrainConfig, nproc_per_node: int) -> dict:
    """Trains one run under torchrun (DDP over ``nproc_per_node`` local processes); returns its final metrics.

    Raises:
        RuntimeError: the run failed (with the exception its processes raised).
    """
    with tempfile.TemporaryDirectory() as tmp:
        cfg, res = Path(tmp) / "config.json", Path(tmp) / "result.json"
        cfg.write_text(json.dumps(config.to_dict()))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc_per_node}",
            "-m",
            "mixnet.experiment.worker",
            str(cfg),
            str(res),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not res.exists():
            raise RuntimeError(f"torchrun exited with {proc.returncode}: {root_cause(proc.stderr or proc.stdout)}")
        return json.loads(res.read_text())


def root_cause(output: str) -> str:
    """The exception a failed torchrun's processes raised (the last ``...Error: ...`` line), else its last lines."""
    pattern = r"^(?:\[rank\d+\]:\s*)?((?:\w+\.)*\w+(?:Error|Exception|Interrupt)\b.*)$"
    errors = re.findall(pattern, output, flags=re.M)
    errors = [e for e in errors if "ChildFailedError" not in e]
    return errors[-1] if errors else " | ".join(output.strip().splitlines()[-3:])


def environment() -> dict[str, str]:
    """The CPU model and the versions of :data:`TRAINING_PACKAGES` (from their metadata; ``-`` when missing)."""
    from mixnet.measure.machine import cpu_model

    out = {"cpu": cpu_model()}
    for name in TRAINING_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "-"
    return out


def run_one(
    run_dir: str | Path,
    make_config: Callable[..., TrainConfig],
    row: dict,
    *,
    nproc_per_node: int = 1,
    describe: Callable[[dict], dict] | None = None,
) -> dict:
    """Trains (or resumes) one run and returns its row; a failure is returned as a failed row.

    Args:
        run_dir: the run's folder (its checkpoint, metrics and model file).
        make_config: builds the run's TrainConfig; called with ``resume=<checkpoint>`` when the run has one.
        row: the fields that name the run (``run`` and whatever the experiment groups by).
        nproc_per_node: >1 trains under torchrun with this many processes.
        describe: more fields from the final metrics (e.g. the model's params and MACs).

    Returns:
        ``row`` with ``status`` (``ok`` or ``failed``), the final metrics (or ``error``), ``train_seconds``,
        ``finished_at`` and the ``environment`` (CPU, package versions) that shapes the result.
    """
    row = dict(row)
    checkpoint = Path(run_dir) / CHECKPOINT_NAME
    extra = {"resume": str(checkpoint)} if checkpoint.exists() else {}
    start = time.perf_counter()
    try:
        config = make_config(**extra)
        if nproc_per_node > 1:
            metrics = train_with_torchrun(config, nproc_per_node)
        else:
            metrics = train_in_process(config)
        row.update(status="ok", **metrics)
        if describe is not None:
            row.update(describe(metrics))
    except Exception as e:  # noqa: BLE001 - a failed run is recorded and the experiment goes on
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        warnings.warn(f"run {row.get('run')} failed: {row['error']}", stacklevel=2)
        if not isinstance(e, MixnetError):
            traceback.print_exc()
    row.update(train_seconds=round(time.perf_counter() - start, 1), finished_at=time.time())
    row["environment"] = environment()
    return row


def record_run(
    results: str | Path, run_dir: str | Path, make_config: Callable[..., TrainConfig], row: dict, **kw
) -> dict:
    """:func:`run_one`, then its row appended to the JSON-lines file ``results``; returns the row."""
    row = run_one(run_dir, make_config, row, **kw)
    append_row(results, row)
    return row


def can_resume(run_dir: str | Path) -> bool:
    """Whether a run has a checkpoint to resume from."""
    return (Path(run_dir) / CHECKPOINT_NAME).exists()

"""Learning curves of an experiment's runs (a study's variants, a search's retrained nets): the plot of every
run, and the slope of its last epochs.

Each results row keeps its run's per-epoch training loss and held-out top-1 (``history``) and names its
variant (``key``) and ``seed``. A run whose top-1 still rises at the end ranks learning speed, not
architectures, so reports give each variant's slope over the last :data:`LAST_EPOCHS` epochs (a
least-squares line, top-1 points per epoch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LAST_EPOCHS = 3
PLOT_FILE = "learning_curves.png"


def end_slope(history: Sequence[dict], last: int = LAST_EPOCHS) -> float:
    """Top-1 points per epoch over the last ``last`` epochs (least squares); nan with fewer than two epochs."""
    points = [(h["epoch"], h["val_top1"]) for h in history if h.get("val_top1") is not None][-last:]
    if len(points) < 2:
        return math.nan
    x, y = np.array(points, dtype=np.float64).T
    return float(np.polyfit(x, y, 1)[0])


def slopes(rows: Sequence[dict], order: Sequence[str]) -> list[dict]:
    """Per variant (``order``: keys in study order): the end slope of each finished run, by seed, and their mean."""
    out = []
    for key in order:
        runs = sorted((r for r in rows if r["key"] == key and r.get("history")), key=lambda r: r["seed"])
        by_seed = {r["seed"]: end_slope(r["history"]) for r in runs}
        finite = [v for v in by_seed.values() if not math.isnan(v)]
        if finite:
            out.append({"key": key, "by_seed": by_seed, "mean": float(np.mean(finite))})
    return out


def _signed(v: float) -> str:
    return "-" if math.isnan(v) else f"{round(v, 2) or 0.0:+.2f}"  # no "-0.00" for a slope that rounds to 0


def slope_lines(rows: Sequence[dict], order: Sequence[str]) -> list[str]:
    """The report's section on convergence (markdown lines); empty when no row keeps its learning curve."""
    table = slopes(rows, order)
    if not table:
        return []
    lines = [
        "## Convergence",
        "",
        f"Slope of held-out top-1 over each run's last {LAST_EPOCHS} epochs (least-squares line, points per "
        "epoch): near 0 when the run has reached its plateau.",
        "",
        "| variant | mean slope | per seed |",
        "|---|---|---|",
    ]
    for t in table:
        per_seed = " / ".join(f"s{s}: {_signed(v)}" for s, v in t["by_seed"].items())
        lines.append(f"| {t['key']} | {_signed(t['mean'])} | {per_seed} |")
    lines += ["", f"![learning curves]({PLOT_FILE})", ""]
    return lines


def plot_learning_curves(rows: Sequence[dict], order: Sequence[str], out_dir: str | Path, title: str) -> Path | None:
    """Writes :data:`PLOT_FILE`: held-out top-1 and training loss per epoch of every run, one colour per variant.

    Returns:
        Its path, or None when no row keeps its learning curve.
    """
    runs = [r for r in rows if r.get("history")]
    if not runs:
        return None
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()
    fig, (top, loss) = plt.subplots(1, 2, figsize=(11, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(order):
        colour = colours[i % len(colours)]
        mine = sorted((r for r in runs if r["key"] == key), key=lambda r: r["seed"])
        for j, r in enumerate(mine):
            epochs = [h["epoch"] for h in r["history"]]
            label = key if j == 0 else None  # one legend entry per variant
            top.plot(epochs, [h["val_top1"] for h in r["history"]], color=colour, alpha=0.8, label=label)
            loss.plot(epochs, [h["train_loss"] for h in r["history"]], color=colour, alpha=0.8)
    top.set_xlabel("epoch")
    top.set_ylabel("held-out top-1 (%), one line per run")
    loss.set_xlabel("epoch")
    loss.set_ylabel("training loss, one line per run")
    top.set_title(f"{title}: learning curves")
    top.legend(fontsize=7)
    for ax in (top, loss):
        ax.grid(alpha=0.3)
    return save_figure(fig, Path(out_dir) / PLOT_FILE)

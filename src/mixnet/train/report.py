"""What a run leaves behind besides weights: per-epoch metrics (JSONL, CSV, TensorBoard if installed),
PNG plots of the loss and accuracy curves, and a short markdown report.

The JSONL file is the source of truth; the CSV and plots are rewritten from it, so a resumed run continues
the same files (rows of epochs that are trained again are dropped first).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path


class MetricsLogger:
    """Appends one row of metrics per epoch to ``metrics.jsonl`` and ``metrics.csv`` in ``run_dir``.

    Args:
        run_dir: the run folder.
        start_epoch: epochs already done (a resume's checkpoint epoch); rows on disk beyond it are
            dropped, since the resumed run trains those epochs again.
        tensorboard: also log scalars to TensorBoard when ``torch.utils.tensorboard`` can be imported.
    """

    def __init__(self, run_dir: str | Path, start_epoch: int = 0, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.csv = self.run_dir / "metrics.csv"
        self.rows = [r for r in read_metrics(self.jsonl) if r.get("epoch", 0) <= start_epoch]
        self._rewrite()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_epoch)
            except ImportError:  # tensorboard is optional
                self.tb = None

    def log(self, row: dict) -> None:
        """Records one epoch's metrics (``row["epoch"]``: epochs completed, 1 for the first)."""
        self.rows.append(dict(row))
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        self._write_csv()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "epoch":
                    self.tb.add_scalar(k, v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        """Flushes and closes TensorBoard."""
        if self.tb is not None:
            self.tb.close()

    def _rewrite(self) -> None:
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self._write_csv()

    def _write_csv(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with open(self.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` file (empty if there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(rows: Sequence[dict], out_dir: str | Path) -> list[Path]:
    """Writes ``loss.png`` (train and val loss) and ``accuracy.png`` (val top-1, EMA too) per epoch."""
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()

    out_dir = Path(out_dir)
    written = []
    for name, keys, ylabel in (
        ("loss.png", [("train_loss", "train"), ("val_loss", "val"), ("ema_val_loss", "val (EMA)")], "loss"),
        ("accuracy.png", [("val_top1", "val top-1"), ("ema_val_top1", "val top-1 (EMA)")], "accuracy (%)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for key, label in keys:
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        written.append(save_figure(fig, out_dir / name))
    return written

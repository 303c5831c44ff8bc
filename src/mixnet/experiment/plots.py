"""One matplotlib set-up for every report: files only (the Agg backend), one way to save a figure.

matplotlib comes with the ``train`` extra and is imported on first use, so the core never needs it.
"""

from __future__ import annotations

from pathlib import Path

from mixnet.errors import require

DPI = 120


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed); names the extra when it is missing."""
    matplotlib = require("matplotlib", "train", "writing report plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lays out ``fig``, writes it to ``path`` (PNG at :data:`DPI`) and closes it; returns the path."""
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return path

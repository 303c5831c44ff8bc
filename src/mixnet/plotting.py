"""One matplotlib set-up for every report and benchmark: files only (the Agg backend), one way to save a figure.

matplotlib comes with the ``train`` extra and is imported on first use, so the core never needs it. It sits
low in the package (it needs only :mod:`mixnet.atomic` and :mod:`mixnet.errors`), so that training,
benchmarks, the study and the search all draw through it.
"""

from __future__ import annotations

from pathlib import Path

from mixnet.atomic import atomic_write
from mixnet.errors import require

DPI = 120


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed); names the extra when it is missing."""
    matplotlib = require("matplotlib", "train", "writing report plots")
    matplotlib.use("Agg")  # whatever MPLBACKEND or an earlier import chose: a report never opens a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Lays out ``fig``, writes it to ``path`` atomically (in the format its suffix names, at :data:`DPI`) and
    closes it; returns the path."""
    path = Path(path)
    fig.tight_layout()
    try:
        # The temporary file's name has no image suffix, so the format is named.
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format=path.suffix.lstrip(".") or "png"))
    finally:
        pyplot().close(fig)
    return path

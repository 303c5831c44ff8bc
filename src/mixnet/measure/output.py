"""Writing what a measurement produced: dataclass rows as CSV (and back), and markdown text."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

_TYPES = {"int": int, "float": float, "str": str}


def write_csv(path: str | Path, rows: Sequence, cls: type) -> Path:
    """Dataclass rows as CSV, one column per field of ``cls``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fld.name for fld in dataclasses.fields(cls)])
        w.writeheader()
        w.writerows(dataclasses.asdict(r) for r in rows)
    return path


def read_csv(path: str | Path, cls: type) -> list:
    """Rows of dataclass ``cls`` read back from a CSV that :func:`write_csv` wrote."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    with open(path, newline="") as f:
        return [cls(**{k: _TYPES[str(types[k])](v) for k, v in rec.items()}) for rec in csv.DictReader(f)]


def emit(text: str, out: str | Path | None = None) -> str:
    """Prints a result (markdown text) and, when ``out`` is given, writes it there too."""
    print(text)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text


def write_outputs(
    out_dir: str | Path,
    stem: str,
    rows: Sequence,
    cls: type,
    markdown: str,
    plot: Callable[[Path], object] | None = None,
) -> dict[str, Path]:
    """Writes ``{stem}.csv`` (the rows), ``{stem}.md`` (``markdown``) and, given ``plot``, ``{stem}.png``.

    Returns:
        ``{"csv": ..., "md": ..., "png": ...}``: the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": write_csv(out / f"{stem}.csv", rows, cls), "md": out / f"{stem}.md"}
    paths["md"].write_text(markdown)
    if plot is not None:
        paths["png"] = out / f"{stem}.png"
        plot(paths["png"])
    return paths

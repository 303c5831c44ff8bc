"""Writing what a measurement produced: dataclass rows as CSV (and back), and markdown text, every file atomically
(:mod:`mixnet.atomic`: a kill or a full disk leaves the previous file)."""

from __future__ import annotations

import csv
import dataclasses
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from mixnet.atomic import write_csv, write_text


def write_dataclass_csv(path: str | Path, rows: Sequence, cls: type) -> Path:
    """Dataclass rows as CSV, one column per field of ``cls`` (:func:`mixnet.atomic.write_csv` on their dicts)."""
    return write_csv(path, [dataclasses.asdict(r) for r in rows], [f.name for f in dataclasses.fields(cls)])


def read_dataclass_csv(path: str | Path, cls: type) -> list:
    """Rows of dataclass ``cls`` read back from a CSV that :func:`write_dataclass_csv` wrote."""
    types = typing.get_type_hints(cls)  # the fields' types (int, float, str) whether annotated as text or not
    with open(path, newline="") as f:
        return [cls(**{k: types[k](v) for k, v in rec.items()}) for rec in csv.DictReader(f)]


def emit(text: str, out: str | Path | None = None) -> str:
    """Prints a result (markdown text) and, when ``out`` is given, writes it there too (atomically)."""
    print(text)
    if out is not None:
        write_text(out, text)
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
    paths = {
        "csv": write_dataclass_csv(out / f"{stem}.csv", rows, cls),
        "md": write_text(out / f"{stem}.md", markdown),
    }
    if plot is not None:
        paths["png"] = out / f"{stem}.png"
        plot(paths["png"])
    return paths

"""Result files of an experiment: one JSON line per run; its tables and texts are written with
:mod:`mixnet.atomic`'s writers (``write_text``, ``write_json``, ``write_csv``, importable from here too).

A run's row is appended and fsynced as the run ends, so a killed experiment loses at most the run in
progress. A reader skips a line that does not parse (a process killed mid-write) and, when several rows
name the same run, keeps the one finished last (a retried failure, a shard's rerun).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from mixnet.atomic import write_csv, write_json, write_text

__all__ = ["append_row", "latest_rows", "read_jsonl", "read_runs", "write_csv", "write_json", "write_text"]


def append_row(path: str | Path, row: dict) -> None:
    """Appends one row as a JSON line and forces it to disk (a crash cannot half-write earlier rows).

    A line left unfinished by a killed process is closed first, so the new row does not join it.
    """
    line = json.dumps(row, sort_keys=True) + "\n"
    with open(path, "ab+") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(paths: str | Path | Iterable[str | Path]) -> list[dict]:
    """Every row (JSON object) of one or more JSON-lines files, in file order; unparsable lines and missing
    files are skipped."""
    if isinstance(paths, str | Path):
        paths = [paths]
    rows = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def latest_rows(rows: Iterable[dict], key: str = "run") -> dict[str, dict]:
    """The latest row of each ``row[key]`` (by ``finished_at``; file order among equals or without it)."""
    out: dict[str, dict] = {}
    for row in rows:
        if key not in row:
            continue
        previous = out.get(row[key])
        if previous is None or row.get("finished_at", 0) >= previous.get("finished_at", 0):
            out[row[key]] = row
    return out


def read_runs(paths: str | Path | Iterable[str | Path], key: str = "run") -> dict[str, dict]:
    """The latest row of every run in the JSON-lines files ``paths`` (run id -> row)."""
    return latest_rows(read_jsonl(paths), key)

"""An experiment folder: it records the options that made its results and refuses another experiment's.

A study or a search started again in its folder resumes; started with other options it must not mix
its rows into the old ones, nor overwrite their record. The record is written once, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mixnet.errors import MixnetError
from mixnet.experiment.rows import write_text


class ForeignFolderError(MixnetError, ValueError):
    """The folder holds another experiment's results (or an unreadable record); it was left untouched."""


def differences(saved: Mapping, mine: Mapping, defaults: Mapping | None = None) -> list[str]:
    """Keys of ``mine`` whose value differs in ``saved``; a key ``saved`` lacks counts as its default then."""
    defaults = defaults or {}
    return sorted(k for k in mine if saved.get(k, defaults.get(k)) != mine[k])


def read_record(folder: str | Path, record_file: str, *, kind: str) -> dict:
    """The record of an experiment folder.

    Raises:
        ForeignFolderError: no readable record (names the file and why).
    """
    path = Path(folder) / record_file
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ForeignFolderError(f"{folder} is not a {kind} folder ({record_file} unreadable: {e})") from None
    if not isinstance(record, dict):
        raise ForeignFolderError(f"{folder} is not a {kind} folder ({record_file} holds no record)")
    return record


def claim_folder(
    folder: str | Path,
    record_file: str,
    record: dict,
    *,
    kind: str,
    identity: Callable[[dict], Mapping] = lambda r: r,
    defaults: Mapping | None = None,
    upgrade: Callable[[dict], dict] = lambda r: r,
) -> Path:
    """Creates ``folder`` and writes ``record`` into it, or checks that the record there is this experiment's.

    Args:
        folder: the experiment folder.
        record_file: the record's file name in it (``study.json``, ``search.json``).
        record: what this experiment records (JSON-able).
        kind: the word for the experiment in messages (``study``, ``search``).
        identity: the part of a record that must match (default: all of it).
        defaults: values of keys a saved record lacks (options added since it was written).
        upgrade: renames a saved record's earlier keys to today's before comparing.

    Returns:
        The folder.

    Raises:
        ForeignFolderError: the folder holds another experiment (names the differing keys) or an unreadable
            record; nothing in it is changed.
    """
    folder = Path(folder)
    path = folder / record_file
    if path.exists():
        saved = upgrade(read_record(folder, record_file, kind=kind))
        try:
            changed = differences(identity(saved), identity(record), defaults)
        except (KeyError, TypeError, AttributeError):
            changed = ["everything"]
        if changed:
            raise ForeignFolderError(
                f"{folder} holds results of a different {kind} (differs in: {', '.join(changed)}); use another "
                f"--out folder, or the same {kind} and options to resume"
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(record, indent=2) + "\n")
    return folder

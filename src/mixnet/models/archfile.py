"""Architecture files: a network as JSON data, so a searched or hand-edited MixNet is an ordinary model.

Format (``format: mixnet-arch``, ``version: 1``)::

    {"format": "mixnet-arch", "version": 1, "name": "found-7ms",
     "config": {<every MixNetConfig field; stages as lists of TF block strings>},
     "meta": {<free-form: how it was found, its predicted latency, ...>}}

``mixnet.create_model("found.json")`` builds it, ``mixnet train --arch found.json`` trains it, and the model
files it is saved to hold the whole config, so eval, predict, export and bench read them like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

from mixnet.models.configs import MixNetConfig

ARCH_FORMAT, ARCH_VERSION = "mixnet-arch", 1


def is_arch_file(name: str | Path) -> bool:
    """Whether ``name`` refers to an architecture file rather than a registered model name."""
    return str(name).endswith(".json")


def save_arch(path: str | Path, config: MixNetConfig, name: str = "", meta: dict | None = None) -> Path:
    """Writes ``config`` as an architecture file; returns the path."""
    path = Path(path)
    record = {"format": ARCH_FORMAT, "version": ARCH_VERSION, "name": name or path.stem, "config": config.to_dict()}
    if meta:
        record["meta"] = meta
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_arch(path: str | Path) -> tuple[str, MixNetConfig, dict]:
    """Reads an architecture file: ``(name, config, meta)``.

    Raises:
        ValueError: a missing or unreadable file, another format or a newer version, or a bad config (named).
    """
    try:
        record = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"cannot read architecture file {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"architecture file {path} is not JSON: {e}") from None
    if not isinstance(record, dict) or record.get("format") != ARCH_FORMAT:
        raise ValueError(f'{path} is not a mixnet architecture file (no "format": "{ARCH_FORMAT}")')
    if not isinstance(record.get("version"), int) or record["version"] > ARCH_VERSION:
        raise ValueError(f"{path}: architecture file version {record.get('version')!r} is newer than this mixnet")
    try:
        config = MixNetConfig.from_dict(record["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad architecture: {e}") from None
    return str(record.get("name") or Path(path).stem), config, dict(record.get("meta") or {})

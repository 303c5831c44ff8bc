"""Checkpoints that a kill or a full disk cannot corrupt, and the final .safetensors export.

Every file is written to a temporary name in the same folder, flushed and fsynced, then moved over the
old one with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so the rename itself
survives a crash. Any failure (a kill, ENOSPC) leaves the previous file as it was. Checkpoints hold only
tensors and plain Python values, so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from mixnet.pretrained import CheckpointError, read_checkpoint


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":  # directories cannot be opened for fsync on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_path)`` and moves the result to ``path`` atomically; on failure ``path`` is untouched.

    Raises:
        OSError: the write failed (the message says the previous file is intact; ENOSPC is named).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            what = "out of disk space" if e.errno == errno.ENOSPC else f"{type(e).__name__}: {e}"
            kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
            raise OSError(e.errno, f"saving {path} failed ({what}); {kept}") from e
        raise
    _fsync_dir(path.parent)
    return path


def save_checkpoint(path: str | Path, checkpoint: Mapping) -> Path:
    """``torch.save`` of ``checkpoint`` to ``path``, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(dict(checkpoint), f)
            f.flush()

    return atomic_write(path, write)


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict:
    """Loads a training checkpoint safely (``weights_only=True``) on the CPU.

    Args:
        path: a ``last.pth`` written by :func:`mixnet.train.train`.
        mmap: memory-map it, so tensors are read only when used (cheap when only ``args`` is needed).

    Raises:
        mixnet.pretrained.CheckpointError: a missing or unreadable file, or one that is not a training
            checkpoint of this package.
    """
    ckpt = read_checkpoint(path, mmap=mmap)
    missing = [k for k in ("model", "optimizer", "epoch", "args", "model_name") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{str(path)!r} is not a mixnet training checkpoint (missing {', '.join(missing)})")
    return dict(ckpt)


def export_safetensors(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    *,
    class_names: list[str],
    model_name: str,
    img_size: int,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Writes weights as .safetensors with ``class_names`` (JSON), ``model_name`` and ``img_size`` metadata.

    ``extra`` adds more metadata (None values are left out; the rest become strings): the trainer records the
    architecture overrides and eval options (``bn_eps``, ``width_mult``, ``crop_pct``...) that
    :func:`mixnet.checkpoint_meta.model_from_checkpoint` needs to rebuild the same model.
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = {"class_names": json.dumps(list(class_names)), "model_name": model_name, "img_size": str(int(img_size))}
    meta |= {k: str(v) for k, v in (extra or {}).items() if v is not None}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def rng_state() -> dict:
    """The torch, CUDA, numpy and Python RNG states as tensors and plain values (``weights_only``-safe)."""
    version, state, gauss = random.getstate()
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [version, list(state), gauss],
    }


def set_rng_state(state: Mapping) -> None:
    """Restores what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))

"""Training checkpoints that a kill or a full disk cannot corrupt, and the RNG state they carry.

Checkpoints are written with :func:`mixnet.atomic.atomic_write` (a failure leaves the previous file as
it was) and hold only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``.
Besides the training state, a checkpoint holds the model's :class:`mixnet.io.spec.ModelSpec` (``spec``),
so ``mixnet eval`` and ``create_model(pretrained=...)`` read it like any model file.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from mixnet.atomic import atomic_write
from mixnet.io.files import CheckpointError, read_checkpoint
from mixnet.io.spec import ModelSpec, SpecError, spec_from_legacy

# The training checkpoint in a run folder (the latest epoch; a resume reads it).
CHECKPOINT_NAME = "last.pth"


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
        mixnet.io.files.CheckpointError: a missing or unreadable file, or one that is not a training
            checkpoint of this package.
    """
    ckpt = read_checkpoint(path, mmap=mmap)
    missing = [k for k in ("model", "optimizer", "epoch", "args") if k not in ckpt]
    if "spec" not in ckpt and "model_name" not in ckpt:
        missing.append("spec")
    if missing:
        raise CheckpointError(f"{str(path)!r} is not a mixnet training checkpoint (missing {', '.join(missing)})")
    return dict(ckpt)


def checkpoint_spec(ckpt: Mapping, path: str | Path) -> ModelSpec:
    """The model spec a training checkpoint records (translated for checkpoints from before specs existed).

    Raises:
        CheckpointError: a malformed spec.
    """
    try:
        if "spec" in ckpt:
            return ModelSpec.from_dict(ckpt["spec"])
        w = ckpt["model"].get("classifier.weight")
        spec = spec_from_legacy(ckpt, int(w.shape[0]) if w is not None else 0, str(path))
    except SpecError as e:
        raise CheckpointError(f"{str(path)!r}: {e}") from e
    if spec is None:
        raise CheckpointError(f"{str(path)!r} records no model")
    return spec


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

"""Reading weight files safely and loading state dicts strictly.

Files are read without executing code: safetensors, or ``torch.load(weights_only=True)``; a file that
holds pickled Python objects is refused with a message that says why. A state dict that does not fit
the model raises an error naming the missing, unexpected and mismatched keys with their shapes;
nothing is loaded with ``strict=False``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixnet.io.convert import from_timm, is_timm_state_dict

# Keys under which training checkpoints nest the weights, in order of preference (EMA first: the
# paper evaluates and exports the EMA weights).
NESTED_KEYS = ("model_ema", "ema", "state_dict_ema", "state_dict", "model")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Mapping[str, Any]:
    """Reads a whole checkpoint file without executing code: safetensors, or ``torch.load(weights_only=True)``.

    The one reader behind :func:`read_state_dict`, :func:`mixnet.io.load.load_model` and the training
    checkpoint loader, so every command reports a bad file the same way.

    Args:
        path: a .safetensors file (read as its tensors) or a ``torch.save`` file (.pth/.pt/.bin).
        mmap: memory-map a ``torch.save`` file, so tensors are only read when used (cheap when only the
            plain values are needed). Files in the pre-1.6 format cannot be mapped and are read whole.

    Returns:
        The file's top-level mapping (tensors on the CPU).

    Raises:
        CheckpointError: the file is missing, cannot be read, would execute code when unpickled, or does
            not hold a mapping; the message names the path and the cause.
    """
    path = Path(path)
    kind = file_format(path)
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: not mappable
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # a corrupt file, not a refused object
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
        raise CheckpointError(_refusal(path, e)) from e
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a mapping of weights")
    return obj


def file_format(path: str | Path) -> str:
    """``safetensors`` or ``torch`` (a ``torch.save`` file), from the file's first bytes, whatever its name.

    Raises:
        CheckpointError: the file is missing, or is neither (a text or JSON file, an image...): reading
            it as weights would only give the reader's confusing error.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # an 8-byte header length, then the JSON header
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):  # torch.save: a zip archive, or a bare pickle
        return "torch"
    raise CheckpointError(
        f"{str(path)!r} is not a model file: a model file is a .safetensors file or a torch.save file (.pth, .pt)"
    )


def _refusal(path: Path, error: Exception) -> str:
    found = re.search(r"(?:GLOBAL|global) ([\w.]+)", str(error))
    what = f" ({found.group(1)})" if found else ""
    return (
        f"refusing to load {str(path)!r}: it holds pickled Python objects{what}, and unpickling them would "
        "execute code from the file. mixnet reads only tensors and plain values from .pth files. If you "
        "trust the file, re-save just its weights elsewhere (torch.save(state_dict, 'weights.pth')) or "
        "convert it to .safetensors"
    )


def read_metadata(path: str | Path) -> tuple[Mapping[str, Any], dict[str, tuple[int, ...]]]:
    """A file's plain (non-tensor) entries and the shapes of its weights, without reading the weights.

    For a .safetensors file: its metadata (str -> str) and the tensor shapes from its header. For a
    ``torch.save`` file: its top-level entries (memory-mapped, so tensors are not read) and the shapes of
    the state dict inside (the one :func:`nested_state_dict` picks).

    Raises:
        CheckpointError: as :func:`read_checkpoint`.
    """
    path = Path(path)
    if file_format(path) == "torch":
        top = read_checkpoint(path, mmap=True)
        sd = nested_state_dict(top)
        return top, {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # get_slice reads no data
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    return meta, shapes


def nested_state_dict(checkpoint: Mapping[str, Any]) -> Mapping[str, Any]:
    """The weights inside a training checkpoint (the first of :data:`NESTED_KEYS` present), else ``checkpoint``."""
    for key in NESTED_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            return checkpoint[key]
    return checkpoint


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a state dict from a .safetensors or .pth/.pt/.bin file, unwrapping training checkpoints.

    Raises:
        CheckpointError: a missing, unreadable or corrupt file, or one that holds no state dict.
    """
    obj = nested_state_dict(read_checkpoint(path))
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(path)!r} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Raises CheckpointError unless ``state_dict`` has exactly the model's keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not fit this model (another architecture or class count?):"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
                lines.append(f"  {title}: {shown}")
        raise CheckpointError("\n".join(lines))


def to_mixnet_format(state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Converts a timm-format state dict to ours; one in our format is returned as it is."""
    if not is_timm_state_dict(state_dict):
        return dict(state_dict)
    try:
        return from_timm(state_dict)
    except KeyError as e:
        raise CheckpointError(f"{source} looks like a timm checkpoint but is not a MixNet: {e}") from e


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Loads a timm- or mixnet-format state dict into ``model``, strictly, after checking it."""
    state_dict = to_mixnet_format(state_dict, source)
    check_state_dict(model, state_dict, source)
    model.load_state_dict(state_dict)

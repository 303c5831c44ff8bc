"""Where and in what precision to run: the device, the autocast dtype and the autocast context.

One place for the rules that training, evaluation and prediction share, so ``--device`` and ``--amp``
mean the same thing in every command.
"""

from __future__ import annotations

import contextlib

import torch

# The --amp choices of every command (auto: bf16 on a CUDA GPU that has it, else full precision).
AMP_MODES = ("auto", "none", "bf16", "fp16")

_AMP_DTYPES: dict[str | None, torch.dtype | None] = {
    None: None,
    "none": None,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's GPU if CUDA is available, else the CPU; ``cuda`` -> ``cuda:<local_rank>``.

    Raises:
        ValueError: a CUDA device was asked for but CUDA is not available.
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"  # under torchrun each process drives the GPU of its local rank
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def amp_dtype(name: str | None, device: torch.device | None = None) -> torch.dtype | None:
    """The autocast dtype for an ``--amp`` choice (None: full precision).

    Args:
        name: ``auto``, ``none`` (or None), ``bf16``/``bfloat16`` or ``fp16``/``float16``.
        device: where the model runs; ``auto`` picks bf16 on a CUDA device that supports it (else full
            precision), and bf16 on a GPU without bf16 support is refused. Without a device ``auto`` means none.

    Raises:
        ValueError: an unknown name, or bf16 on a GPU that lacks it.
    """
    on_cuda = device is not None and device.type == "cuda"
    if name == "auto":
        return torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else None
    if name not in _AMP_DTYPES:
        raise ValueError(f"unknown amp dtype {name!r}; use auto, none, bf16 or fp16")
    dtype = _AMP_DTYPES[name]
    if dtype == torch.bfloat16 and on_cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU does not support bf16; use --amp fp16 or none")
    return dtype


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``'s type, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

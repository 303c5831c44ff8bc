"""Writing model files: weights as .safetensors with the :class:`mixnet.io.spec.ModelSpec` in the metadata."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mixnet.atomic import atomic_write
from mixnet.io.spec import SPEC_KEY, ModelSpec


def save_model(
    path: str | Path,
    model: nn.Module | Mapping[str, torch.Tensor],
    spec: ModelSpec | None = None,
    *,
    class_names: list[str] | tuple[str, ...] | None = None,
) -> Path:
    """Writes a model file that :func:`mixnet.io.load.load_model` rebuilds without any other argument.

    Args:
        path: the ``.safetensors`` file to write (atomically: a failure leaves an existing file intact).
        model: a MixNet, or a state dict in mixnet's key layout (then ``spec`` is required).
        spec: what the file records; default: :meth:`ModelSpec.from_model` of ``model``.
        class_names: class names to record (when ``spec`` is derived from the model).

    Raises:
        ValueError: a path that is not .safetensors, or a state dict without a spec.
        OSError: the write failed (the message says whether a previous file is intact).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"model files are .safetensors, got {str(path)!r}")
    if isinstance(model, nn.Module):
        spec = spec or ModelSpec.from_model(model, class_names=class_names)
        state_dict: Mapping[str, torch.Tensor] = model.state_dict()
    elif spec is None:
        raise ValueError("save_model() needs a spec when given a state dict")
    else:
        state_dict = model
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={SPEC_KEY: spec.to_json()}))

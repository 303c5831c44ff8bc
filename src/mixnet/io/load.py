"""Loading model files: how every command that uses a model (eval, predict, export, quantize, the demo) gets it.

:func:`load_model` takes any model file this project or timm writes and returns the model, in eval mode,
with its :class:`mixnet.io.spec.ModelSpec`:

- a ``.safetensors`` model file (``mixnet.spec`` metadata), or one from timm or the hub (no spec: the
  architecture must be named);
- a ``.pth`` training checkpoint (``spec`` entry; the EMA weights when it has them) or a plain state dict
  in mixnet or timm key layout, also nested under ``state_dict`` / ``model`` as other trainers save them;
- files from before specs existed (their flat metadata is translated).

Files are read without executing code (:func:`mixnet.io.files.read_checkpoint`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mixnet.io.files import CheckpointError, load_weights, read_metadata, read_state_dict
from mixnet.io.spec import SPEC_KEY, ModelSpec, SpecError, apply_to_model, spec_from_legacy

_CLASSIFIER = "classifier.weight"  # the same key in mixnet's and timm's layouts


def read_spec(path: str | Path) -> tuple[ModelSpec | None, int | None]:
    """The spec a file records (None for a timm file) and its classifier's output count, reading no weights.

    Raises:
        CheckpointError: a missing or unreadable file, or a malformed spec (named).
    """
    path = Path(path)
    meta, shapes = read_metadata(path)
    shape = shapes.get(_CLASSIFIER) or shapes.get(f"module.{_CLASSIFIER}")
    num_classes = int(shape[0]) if shape else None
    try:
        raw = meta.get(SPEC_KEY, meta.get("spec"))
        if isinstance(raw, str):
            spec = ModelSpec.from_json(raw)
        elif isinstance(raw, Mapping):
            spec = ModelSpec.from_dict(raw)
        else:
            spec = spec_from_legacy(meta, num_classes, str(path))
    except SpecError as e:
        raise CheckpointError(f"{str(path)!r}: {e}") from e
    if spec is not None and num_classes is not None and spec.num_classes != num_classes:
        raise CheckpointError(
            f"{str(path)!r}: its spec says {spec.num_classes} classes but the classifier has {num_classes} outputs"
        )
    return spec, num_classes


def load_model(
    path: str | Path,
    *,
    architecture: str | None = None,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, ModelSpec]:
    """Builds the model a file describes, loads its weights strictly and returns it in eval mode.

    Args:
        path: a model file (see the module docstring).
        architecture: the registered model to build; needed for files that record none (timm's). When the
            file names another one, this one is used with the file's config changes on top (with a
            warning): e.g. ``mixnet_s`` weights in a ``tf_mixnet_s``.
        device: where to put the model (default: the CPU).

    Returns:
        ``(model, spec)``; ``model.pretrained_cfg`` holds the spec's name and preprocessing.

    Raises:
        CheckpointError: an unreadable file, one without a recorded architecture when none is given,
            or weights that do not fit (missing, unexpected and mismatched keys are named).
    """
    path = Path(path)
    spec, num_classes = read_spec(path)
    if spec is None:
        if architecture is None:
            raise CheckpointError(
                f"{str(path)!r} records no architecture (a timm or plain state-dict file): pass --model "
                "(architecture= in Python)"
            )
        spec = ModelSpec(architecture, num_classes=num_classes if num_classes is not None else 0)
    elif architecture is not None and architecture != spec.architecture:
        if spec.architecture is None:
            raise CheckpointError(
                f"{str(path)!r} holds an architecture of its own (no registered name): it cannot be loaded as "
                f"{architecture!r}; leave out --model"
            )
        warnings.warn(
            f"{str(path)!r} was saved from {spec.architecture!r} but is loaded into {architecture!r}", stacklevel=2
        )
        try:
            spec = spec.replace(architecture=architecture)
        except SpecError as e:
            raise CheckpointError(f"{str(path)!r}: {e}") from e
    try:
        model = spec.build()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r}: its spec does not build a model: {e}") from e
    load_weights(model, read_state_dict(path), str(path))
    apply_to_model(model, spec)
    if device is not None:
        model.to(device)
    return model.eval(), spec


def imagenet_or_own_class_names(spec: ModelSpec) -> tuple[list[str] | None, str | None]:
    """The spec's class names, else ImageNet's for a 1000-class model: ``(names, "checkpoint"|"imagenet"|None)``."""
    if spec.class_names is not None:
        return list(spec.class_names), "checkpoint"
    if spec.num_classes == 1000:
        from mixnet.io.imagenet import imagenet_class_names

        return imagenet_class_names(), "imagenet"
    return None, None

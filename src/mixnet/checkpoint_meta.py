"""What a checkpoint says about itself: class names, model name, input size and class count.

``mixnet train`` saves ``torch.save({"model": sd, "model_ema": sd | None, "class_names": [...],
"model_name": str, "img_size": int, "args": {...}})`` and exports ``.safetensors`` files whose metadata
holds ``class_names`` (JSON), ``model_name`` and ``img_size`` (strings; safetensors metadata is str -> str).
timm files carry none of this; their class count is read from the classifier's shape. Files are read
without executing code (``torch.load(weights_only=True)``, safetensors), as in :mod:`mixnet.pretrained`.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mixnet.pretrained import CheckpointError, nested_state_dict, read_checkpoint

# The classifier weight in both mixnet and timm key layouts.
_CLASSIFIER = "classifier.weight"

# Architecture options a training run may override (create_model keywords), with their types. They must be
# rebuilt for the weights to fit (width_mult, head_channels) or to compute the same function (bn_eps: the
# trainer's default 1e-3 differs from the registered mixnet_* models' 1e-5).
_MODEL_KWARGS = {"width_mult": float, "depth_mult": float, "head_channels": int, "bn_eps": float, "padding": str}
# Eval-transform options of the run, used when the user gives none.
_EVAL_KWARGS = {"crop_pct": float, "interpolation": str}


def _class_names(value: Any, path: Path) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):  # safetensors metadata: a JSON list
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{str(path)!r}: class_names metadata is not JSON: {e}") from e
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise CheckpointError(f"{str(path)!r}: class_names must be a list of strings, got {type(value).__name__}")
    if len(set(value)) != len(value):
        raise CheckpointError(f"{str(path)!r}: class_names has duplicates")
    return list(value)


def _int_or_none(value: Any, key: str, path: Path) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CheckpointError(f"{str(path)!r}: {key} must be an integer, got {value!r}") from None


def _typed(source: Mapping[str, Any], types: Mapping[str, type], path: Path) -> dict[str, Any]:
    out = {}
    for key, kind in types.items():
        value = source.get(key)
        if value is None or value == "":
            continue
        try:
            out[key] = kind(value)
        except (TypeError, ValueError):
            raise CheckpointError(f"{str(path)!r}: {key} must be a {kind.__name__}, got {value!r}") from None
    return out


def load_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """Reads a checkpoint's metadata without building a model.

    Args:
        path: a ``mixnet train`` checkpoint (.pth/.pt), a .safetensors export, or a timm weights file.

    Returns:
        ``{"class_names": list[str] | None, "model_name": str | None, "img_size": int | None,
        "num_classes": int | None, "model_kwargs": dict, "eval_kwargs": dict}``. ``num_classes`` is the
        classifier's output count (None when the file has no classifier). ``model_kwargs`` holds the
        architecture overrides of the run (``width_mult``, ``depth_mult``, ``head_channels``, ``bn_eps``,
        ``padding``) for ``create_model``; ``eval_kwargs`` its ``crop_pct`` and ``interpolation``. Both are
        read from a training checkpoint's ``args``, or from a .safetensors file's metadata keys of the
        same names (or a JSON ``model_kwargs`` entry).

    Raises:
        CheckpointError: a missing or unreadable file, malformed metadata, or class names whose count
            differs from the classifier's.
    """
    path = Path(path)
    meta: Mapping[str, Any]
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                # Only the shape is needed; get_slice reads no tensor data.
                key = next((k for k in f.keys() if k.removeprefix("module.") == _CLASSIFIER), None)
                classifier_shape = tuple(f.get_slice(key).get_shape()) if key else None
        except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    else:
        meta = read_checkpoint(path, mmap=True)  # mapped: only the classifier's shape is looked at
        sd = nested_state_dict(meta)
        w = sd.get(_CLASSIFIER, sd.get(f"module.{_CLASSIFIER}"))
        classifier_shape = tuple(w.shape) if isinstance(w, torch.Tensor) else None

    if path.suffix == ".safetensors":
        options: dict[str, Any] = dict(meta)
        if meta.get("model_kwargs"):
            try:
                options |= json.loads(meta["model_kwargs"])
            except (json.JSONDecodeError, TypeError) as e:
                raise CheckpointError(f"{str(path)!r}: model_kwargs metadata is not a JSON object: {e}") from e
    else:
        options = dict(meta["args"]) if isinstance(meta.get("args"), Mapping) else {}
    class_names = _class_names(meta.get("class_names"), path)
    model_name = meta.get("model_name")
    if model_name is not None and not isinstance(model_name, str):
        raise CheckpointError(f"{str(path)!r}: model_name must be a string, got {model_name!r}")
    num_classes = int(classifier_shape[0]) if classifier_shape else None
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise CheckpointError(
            f"{str(path)!r}: {len(class_names)} class names but the classifier has {num_classes} outputs"
        )
    return {
        "class_names": class_names,
        "model_name": model_name or None,
        "img_size": _int_or_none(meta.get("img_size"), "img_size", path),
        "num_classes": num_classes if num_classes is not None else (len(class_names) if class_names else None),
        "model_kwargs": _typed(options, _MODEL_KWARGS, path),
        "eval_kwargs": _typed(options, _EVAL_KWARGS, path),
    }


def model_from_checkpoint(
    model_name: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    pretrained: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Builds a model for inference from a checkpoint, timm's hub weights, or (with a warning) random init.

    The model name, class count and class names come from the checkpoint when it has them; 1000-class
    weights without names get the ImageNet class names.

    Args:
        model_name: a registered name; default the checkpoint's ``model_name``.
        checkpoint: a file for ``create_model(pretrained=path)``.
        pretrained: load timm's ImageNet weights from the Hugging Face hub instead.

    Returns:
        The model in eval mode, and ``{"model_name", "model_kwargs", "eval_kwargs", "class_names" (or
        None), "class_names_source" ("checkpoint", "imagenet" or None), "num_classes", "img_size" (or None),
        "weights"}`` (see :func:`load_checkpoint_meta`).

    Raises:
        ValueError: both or neither of a name and a checkpoint naming it, or a checkpoint and ``pretrained``.
        CheckpointError: an unreadable checkpoint or one that does not fit the model.
    """
    from mixnet.registry import create_model

    if checkpoint is not None and pretrained:
        raise ValueError("give either a checkpoint file or pretrained (hub) weights, not both")
    meta = load_checkpoint_meta(checkpoint) if checkpoint is not None else {}
    saved_name = meta.get("model_name")
    if model_name and saved_name and model_name != saved_name:
        warnings.warn(
            f"checkpoint {str(checkpoint)!r} was saved from {saved_name!r} but is loaded into {model_name!r}",
            stacklevel=2,
        )
    name = model_name or saved_name
    if not name:
        raise ValueError(
            "no model name: pass --model (the checkpoint does not record one)"
            if checkpoint is not None
            else "no model name: pass --model"
        )
    num_classes = meta.get("num_classes") or 1000
    class_names = meta.get("class_names")
    source = "checkpoint" if class_names is not None else None
    if class_names is None and num_classes == 1000:
        from mixnet.predict import imagenet_class_names

        class_names, source = imagenet_class_names(), "imagenet"
    if checkpoint is None and not pretrained:
        warnings.warn(f"no weights given: {name} is randomly initialised", stacklevel=2)
    weights: bool | str | Path = checkpoint if checkpoint is not None else pretrained
    model_kwargs = meta.get("model_kwargs", {})
    if saved_name and "bn_eps" not in model_kwargs:
        # A mixnet export that does not say which BN eps it was trained with: the registry default may
        # differ from the run's (the trainer's default is the paper's 1e-3), which shifts every output.
        warnings.warn(
            f"{str(checkpoint)!r} does not record bn_eps; using {name}'s default. If the run used another "
            "(mixnet train defaults to 1e-3), outputs differ slightly",
            stacklevel=2,
        )
    try:
        model = create_model(name, pretrained=weights, num_classes=num_classes, **model_kwargs).eval()
    except CheckpointError as e:
        if checkpoint is None or model_kwargs:
            raise
        raise CheckpointError(
            f"{e}\nThe file records no architecture options (width_mult, head_channels): if the run changed "
            "them, evaluate its training checkpoint (last.pth), whose args hold them, or re-export the weights "
            "with a JSON 'model_kwargs' metadata entry"
        ) from e
    info = {
        "model_name": name,
        "model_kwargs": model_kwargs,
        "eval_kwargs": meta.get("eval_kwargs", {}),
        "class_names": class_names,
        "class_names_source": source,
        "num_classes": num_classes,
        "img_size": meta.get("img_size"),
        "weights": str(checkpoint) if checkpoint is not None else ("timm hub" if pretrained else "random"),
    }
    return model, info

"""Loading weights: timm's published ImageNet weights (Hugging Face hub) or a local checkpoint.

Files are read without executing code: safetensors, or ``torch.load(weights_only=True)``. A
checkpoint that does not fit the model raises an error naming the missing, unexpected and
mismatched keys with their shapes; nothing is loaded with ``strict=False``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mixnet.convert import from_timm, is_timm_state_dict

if TYPE_CHECKING:
    from mixnet.registry import ModelEntry

# Keys under which training checkpoints nest the weights, in order of preference (EMA first: the
# paper evaluates and exports the EMA weights).
NESTED_KEYS = ("model_ema", "ema", "state_dict_ema", "state_dict", "model")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Mapping[str, Any]:
    """Reads a whole checkpoint file without executing code: safetensors, or ``torch.load(weights_only=True)``.

    The one reader behind :func:`read_state_dict`, :func:`mixnet.train.checkpoint.load_checkpoint` and
    :func:`mixnet.checkpoint_meta.load_checkpoint_meta`, so every command reports a bad file the same way.

    Args:
        path: a .safetensors file (read as its tensors) or a ``torch.save`` file (.pth/.pt/.bin).
        mmap: memory-map a ``torch.save`` file, so tensors are only read when used (cheap when only the
            plain values are needed). Files in the pre-1.6 format cannot be mapped and are read whole.

    Returns:
        The file's top-level mapping (tensors on the CPU).

    Raises:
        CheckpointError: the file is missing, cannot be read, or does not hold a mapping; the message names
            the path and the cause.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(path))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: not mappable
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a mapping of weights")
    return obj


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


def _download(entry: ModelEntry) -> str:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise RuntimeError(
            f"pretrained=True downloads {entry.hf_hub_id} with huggingface_hub, which is not installed: "
            "pip install 'mixnet[hub]', or pass pretrained='path/to/model.safetensors'"
        ) from None
    try:
        return hf_hub_download(entry.hf_hub_id, "model.safetensors")
    except Exception as e:  # noqa: BLE001 - network, auth and cache errors all end here
        raise RuntimeError(
            f"could not fetch {entry.hf_hub_id} from the Hugging Face hub ({type(e).__name__}: {e}).\n"
            f"Offline? On a machine with network, download "
            f"https://huggingface.co/{entry.hf_hub_id}/resolve/main/model.safetensors, copy it here and "
            f"pass pretrained='path/to/model.safetensors' (or `--pretrained path` on the command line). "
            "A file already in the hub cache is used with HF_HUB_OFFLINE=1."
        ) from e


def _drop_absent_head(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drops head/classifier weights the model does not have (features_only, or num_classes=0)."""
    own = model.state_dict()
    return {k: v for k, v in state_dict.items() if k in own or not k.startswith(("head.", "classifier."))}


def _adapt_for_model(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fits ImageNet weights to another class count or input channel count (hub weights only)."""
    own = model.state_dict()
    state_dict = _drop_absent_head(model, state_dict)
    for key in ("classifier.weight", "classifier.bias"):
        if key in state_dict and own[key].shape != state_dict[key].shape:  # another class count: fresh init
            state_dict[key] = own[key]
    w = state_dict.get("stem.conv.weight")
    if w is not None and w.shape[1] != own["stem.conv.weight"].shape[1]:
        # Same recipe as timm's adapt_input_conv: sum RGB for 1 channel, else tile and rescale.
        c = own["stem.conv.weight"].shape[1]
        w = w.sum(1, keepdim=True) if c == 1 else w.repeat(1, (c + 2) // 3, 1, 1)[:, :c] * (3 / c)
        state_dict["stem.conv.weight"] = w
    return state_dict


def load_pretrained(model: nn.Module, entry: ModelEntry, pretrained: bool | str | Path) -> None:
    """Loads timm's ImageNet weights (``pretrained=True``) or a local file into ``model``."""
    if pretrained is True:
        from safetensors.torch import load_file

        state_dict = to_mixnet_format(load_file(_download(entry)), entry.hf_hub_id)
        load_weights(model, _adapt_for_model(model, state_dict), entry.hf_hub_id)
    else:
        state_dict = to_mixnet_format(read_state_dict(pretrained), str(pretrained))
        load_weights(model, _drop_absent_head(model, state_dict), str(pretrained))

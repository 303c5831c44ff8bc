"""Putting published or saved weights into a freshly built model (``create_model(pretrained=...)``).

ImageNet weights are the usual start for a model with another head or input: a classifier of another
size is left freshly initialised (with a warning, whether the weights came from the hub or a local
file), another input channel count adapts the stem (timm's rule), and a backbone or a model without a
classifier simply does not take the head's weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from mixnet.errors import HubError
from mixnet.io.files import load_weights, read_state_dict, to_mixnet_format
from mixnet.io.hub import download
from mixnet.io.load import read_spec
from mixnet.models.registry import ModelEntry

_HEAD = ("head.", "classifier.")


def adapt_to_model(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Fits weights (our key layout) to the model's class count, input channels and head."""
    own = model.state_dict()
    # A backbone (features_only) or a model without classifier takes no head weights.
    state_dict = {k: v for k, v in state_dict.items() if k in own or not k.startswith(_HEAD)}
    key = "classifier.weight"
    if key in own and key not in state_dict:
        warnings.warn(f"{source} has no classifier; this model's classifier is freshly initialised", stacklevel=3)
        state_dict[key], state_dict["classifier.bias"] = own[key], own["classifier.bias"]
    elif key in state_dict and key in own and own[key].shape != state_dict[key].shape:
        warnings.warn(
            f"{source} has a {state_dict[key].shape[0]}-class classifier; this model's "
            f"{own[key].shape[0]}-class classifier is freshly initialised",
            stacklevel=3,
        )
        state_dict[key], state_dict["classifier.bias"] = own[key], own["classifier.bias"]
    w = state_dict.get("stem.conv.weight")
    if w is not None and w.shape[1] != own["stem.conv.weight"].shape[1]:
        # Same rule as timm's adapt_input_conv: sum RGB for 1 channel, else tile and rescale.
        c = own["stem.conv.weight"].shape[1]
        w = w.sum(1, keepdim=True) if c == 1 else w.repeat(1, (c + 2) // 3, 1, 1)[:, :c] * (3 / c)
        state_dict["stem.conv.weight"] = w
    return state_dict


def _warn_if_built_otherwise(model: nn.Module, entry: ModelEntry, path: str) -> None:
    """Warns when a mixnet model file records another architecture than the model it is loaded into.

    The weights may still fit (``bn_eps`` or ``padding`` change no shape) while computing another function;
    :func:`mixnet.io.load.load_model` rebuilds the file's own model instead.
    """
    spec, _ = read_spec(path)
    if spec is None:
        return
    theirs = spec.arch_config()
    diff = model.config.diff(theirs)
    if (spec.architecture is not None and spec.architecture != entry.name) or diff:
        warnings.warn(
            f"{path} was saved from {spec.architecture} with {dict(spec.config) or 'no changes'}; it is loaded into "
            f"{entry.name} built with {entry.config.diff(model.config) or 'no changes'} (differs in "
            f"{sorted(diff) or 'the name only'}); mixnet.load_model(path) rebuilds the saved model",
            stacklevel=4,
        )


def load_pretrained(model: nn.Module, entry: ModelEntry, pretrained: bool | str | Path) -> None:
    """Loads timm's ImageNet weights (``pretrained=True``) or a model file into ``model``, strictly after adapting.

    Raises:
        CheckpointError: an unreadable file or weights of another architecture (keys and shapes named).
        HubError, MissingExtraError: hub weights that cannot be fetched.
    """
    if pretrained is True:
        if entry.hf_hub_id is None:
            raise HubError(f"no published weights are registered for {entry.name}; pass a model file instead")
        source = entry.hf_hub_id
        path: str | Path = download(entry)
    else:
        source = path = str(pretrained)
        _warn_if_built_otherwise(model, entry, path)
    state_dict = to_mixnet_format(read_state_dict(path), source)
    load_weights(model, adapt_to_model(model, state_dict, source), source)

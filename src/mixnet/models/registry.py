"""The model registry: the registered names (``list_models``) and what is known about each.

Each entry carries the architecture (:mod:`mixnet.models.configs`), the paper's numbers and the timm
weights it can load, so ``create_model``, ``mixnet info`` and the tests read one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixnet.models.configs import CONFIGS, MixNetConfig


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its architecture and what is published about it.

    Attributes:
        name: registry name (timm's name for the same network).
        config: the architecture.
        hf_hub_id: timm's ImageNet weights on the Hugging Face hub.
        timm_top1: ImageNet top-1 of those weights as timm reports it.
        paper_top1: the paper's ImageNet top-1 (None where the paper has no such model).
        paper_macs: the paper's multiply-adds at 224px, in millions.
    """

    name: str
    config: MixNetConfig
    hf_hub_id: str
    timm_top1: float
    paper_top1: float | None = None
    paper_macs: int | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> None:
    """Adds a model; a name that is already taken is an error, not an overwrite."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


for _name, _hub, _timm, _paper, _macs in [
    ("mixnet_s", "timm/mixnet_s.ft_in1k", 76.00, 75.8, 256),
    ("mixnet_m", "timm/mixnet_m.ft_in1k", 77.27, 77.0, 360),
    ("mixnet_l", "timm/mixnet_l.ft_in1k", 78.97, 78.9, 565),
    ("mixnet_xl", "timm/mixnet_xl.ra_in1k", 80.49, None, None),
    ("tf_mixnet_s", "timm/tf_mixnet_s.in1k", 75.66, 75.8, 256),
    ("tf_mixnet_m", "timm/tf_mixnet_m.in1k", 76.95, 77.0, 360),
    ("tf_mixnet_l", "timm/tf_mixnet_l.in1k", 78.77, 78.9, 565),
]:
    register(ModelEntry(_name, CONFIGS[_name], _hub, _timm, _paper, _macs))


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None

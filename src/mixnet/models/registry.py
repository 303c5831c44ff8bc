"""The model registry: the registered names (``list_models``) and what is known about each.

Each entry carries the architecture (:mod:`mixnet.models.configs`), the paper's numbers and the timm
weights it can load, so ``create_model``, ``mixnet info`` and the tests read one source of truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mixnet.models.configs import CONFIGS, KernelSpec, MixNetConfig
from mixnet.models.preprocess import Preprocess


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its architecture and what is published about it.

    Attributes:
        name: registry name (timm's name for the same network).
        config: the architecture.
        hf_hub_id: timm's ImageNet weights on the Hugging Face hub (None: no weights offered).
        timm_top1: ImageNet top-1 of those weights as timm reports it.
        paper_top1: the paper's ImageNet top-1 (None where the paper has no such model; for the
            MobileNet baselines, the 3x3 point of the paper's Figures 1 and 4, read off the plot).
        paper_macs: the paper's multiply-adds at 224px, in millions.
        timm_name: timm's name of the same network when it differs (``mobilenetv2_100``).
        preprocess: eval preprocessing of the hub weights when it is not the ImageNet default.
    """

    name: str
    config: MixNetConfig
    hf_hub_id: str | None = None
    timm_top1: float | None = None
    paper_top1: float | None = None
    paper_macs: int | None = None
    timm_name: str | None = None
    preprocess: Preprocess | None = None

    @property
    def timm_model(self) -> str:
        """The name ``timm.create_model`` knows this network by."""
        return self.timm_name or self.name


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

# The paper's baselines (section 4): built from the same block data, their kernels set by a KernelSpec.
register(
    ModelEntry(
        "mobilenet_v1",
        CONFIGS["mobilenet_v1"],
        "timm/mobilenetv1_100.ra4_e3600_r224_in1k",
        None,
        71.1,
        575,
        "mobilenetv1_100",
        Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    )
)
register(
    ModelEntry(
        "mobilenet_v2", CONFIGS["mobilenet_v2"], "timm/mobilenetv2_100.ra_in1k", None, 72.9, 300, "mobilenetv2_100"
    )
)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def resolve_config(name: str, kernels: KernelSpec | str | None = None, **overrides) -> MixNetConfig:
    """The architecture of registered model ``name`` with field ``overrides`` and a depthwise kernel spec.

    Raises:
        ValueError: an unknown name, field or kernel spec.
    """
    config = get_entry(name).config
    unknown = set(overrides) - {f.name for f in dataclasses.fields(MixNetConfig)}
    if unknown:
        raise ValueError(f"unknown architecture field(s): {', '.join(sorted(unknown))}")
    config = config.replace(**overrides) if overrides else config
    return config.with_kernels(kernels) if kernels is not None else config


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None

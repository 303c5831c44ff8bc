"""Parameters and multiply-adds of a MixNet, computed from its architecture data alone.

No model is built, so this is cheap enough for architecture search. What is counted (per image):

- ``conv`` / ``linear``: one MAC per weight per output position (biases not counted);
- ``bn``: one MAC per output element (a scale and shift, as folded into the conv at inference);
- ``act``: one op per element for ReLU (ReLU6), swish and the SE sigmoid;
- ``other``: global average pools (one add per input element), the SE gate multiply and the
  residual adds (one per element).

The paper's 256M / 360M / 565M for S / M / L lie between conv+linear alone (239.2M / 339.2M / 555.3M)
and this full count (254.2M / 358.6M / 580.9M; ``mixnet info`` prints both). A test checks every
category against a forward pass whose operations are counted one by one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from torch import nn

from mixnet.layers.mixconv import split_channels
from mixnet.models.arch import BlockArgs, expand_rows
from mixnet.models.archfile import is_arch_file, load_arch
from mixnet.models.configs import KernelSpec, MixNetConfig
from mixnet.models.registry import resolve_config


@dataclass
class Complexity:
    """Counts for one image.

    Attributes:
        params: trainable parameters.
        macs: all multiply-adds and elementwise ops (the sum of ``by_kind``).
        by_kind: MACs per category: conv, linear, bn, act, other.
    """

    params: int = 0
    by_kind: Counter = field(default_factory=Counter)

    @property
    def macs(self) -> int:
        """Total multiply-adds and elementwise ops."""
        return sum(self.by_kind.values())

    @property
    def conv_linear_macs(self) -> int:
        """Multiply-adds of the conv and linear layers only."""
        return self.by_kind["conv"] + self.by_kind["linear"]

    def _conv(self, c_in: list[int], c_out: list[int], k: list[int], hw: int, depthwise: bool, bias: bool = False):
        for ci, co, kk in zip(c_in, c_out, k, strict=True):
            weights = kk * kk * co * (1 if depthwise else ci)
            self.params += weights + (co if bias else 0)
            self.by_kind["conv"] += weights * hw

    def _bn_act(self, c: int, hw: int, act: bool = True) -> None:
        self.params += 2 * c
        self.by_kind["bn"] += c * hw
        if act:
            self.by_kind["act"] += c * hw


def count_block(c: Complexity, b: BlockArgs, h: int, w: int, config: MixNetConfig) -> tuple[int, int]:
    """Adds one block (input ``h`` x ``w``) to ``c``; returns its output size."""
    hw_in = h * w
    mid = b.mid_channels
    if b.expand_ratio != 1:
        g = b.expand_groups
        c._conv(split_channels(b.in_channels, g), split_channels(mid, g), [1] * g, hw_in, depthwise=False)
        c._bn_act(mid, hw_in)
    h, w = math.ceil(h / b.stride), math.ceil(w / b.stride)
    splits = split_channels(mid, len(b.kernel_sizes), config.dw_split)
    kernels = [3 if config.dw_dilated and k > 3 else k for k in b.kernel_sizes]  # dilated: 3x3 weights
    c._conv(splits, splits, kernels, h * w, depthwise=True)
    c._bn_act(mid, h * w)
    if b.se_ratio:
        c.by_kind["other"] += mid * h * w  # pool
        c._conv([mid], [b.se_channels], [1], 1, depthwise=False, bias=True)
        c.by_kind["act"] += b.se_channels
        c._conv([b.se_channels], [mid], [1], 1, depthwise=False, bias=True)
        c.by_kind["act"] += mid  # sigmoid
        c.by_kind["other"] += mid * h * w  # gate
    g = b.project_groups
    c._conv(split_channels(mid, g), split_channels(b.out_channels, g), [1] * g, h * w, depthwise=False)
    c._bn_act(b.out_channels, h * w, act=b.project_act)
    if b.skip and b.stride == 1 and b.in_channels == b.out_channels:
        c.by_kind["other"] += b.out_channels * h * w
    return h, w


def config_complexity(
    config: MixNetConfig,
    img_size: int | tuple[int, int] = 224,
    num_classes: int = 1000,
    in_chans: int = 3,
    features_only: bool = False,
) -> Complexity:
    """Counts params and MACs of the model that ``config`` describes (see the module docstring)."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    c = Complexity()
    h, w = math.ceil(h / 2), math.ceil(w / 2)
    stem = config.scaled_stem_channels
    c._conv([in_chans], [stem], [3], h * w, depthwise=False)
    c._bn_act(stem, h * w)
    for stage in config.scaled_stages():
        for b in expand_rows(stage):
            h, w = count_block(c, b, h, w, config)
    if features_only:
        return c
    last = config.scaled_stages()[-1][-1].out_channels
    head = config.scaled_head_channels
    if head:
        c._conv([last], [head], [1], h * w, depthwise=False)
        c._bn_act(head, h * w)
    features = config.num_features
    c.by_kind["other"] += features * h * w  # global pool
    if num_classes:
        c.params += features * num_classes + num_classes
        c.by_kind["linear"] += features * num_classes
    return c


def complexity(
    name_or_model: str | nn.Module,
    img_size: int | tuple[int, int] = 224,
    *,
    kernels: KernelSpec | str | None = None,
    **overrides,
) -> Complexity:
    """Params and MACs of a registered model name, an architecture file or a built MixNet, without running it.

    For a name the default head (1000 classes, 3 input channels) is assumed, and ``kernels`` (a kernel
    spec such as ``"k3.5.7-exp"``) and architecture ``overrides`` (``width_mult=0.5``) are applied as
    ``create_model`` applies them; for a model its own class count, input channels and
    ``features_only`` are used.
    """
    if isinstance(name_or_model, str) and is_arch_file(name_or_model):
        config = load_arch(name_or_model)[1]
        config = config.replace(**overrides) if overrides else config
        return config_complexity(config.with_kernels(kernels) if kernels else config, img_size)
    if isinstance(name_or_model, str):
        return config_complexity(resolve_config(name_or_model, kernels, **overrides), img_size)
    if kernels is not None or overrides:
        raise TypeError("kernels and architecture overrides apply to a model name, not to a built model")
    m = name_or_model
    if not hasattr(m, "config"):
        raise TypeError(f"complexity() needs a model name or a MixNet, got {type(m).__name__}")
    return config_complexity(
        m.config,
        img_size,
        num_classes=getattr(m, "num_classes", 1000),
        in_chans=m.stem.conv.in_channels,
        features_only=getattr(m, "features_only", False),
    )

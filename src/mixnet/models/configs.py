"""The MixNet tables of the paper (Tan & Le, 2019, figure 9 / the official TF code) as data.

Each inner list is a stage; a stage is what the depth multiplier scales as a whole (timm's grouping,
which its weights and the published MixNet-XL depend on). MixNet-L and -XL are MixNet-M scaled.

The paper's baselines, MobileNetV1 and V2, are tables in the same notation (the same block class
builds them): V1's depthwise-separable layer is a block without expansion whose projection is
activated (``pact``) and has no shortcut (``noskip``); both use ReLU6 throughout. Their kernel
variants (:class:`KernelSpec`) replace the kernel of every depthwise conv, as the paper's kernel study does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mixnet.layers.mixconv import Split
from mixnet.layers.padding import Padding, check_padding
from mixnet.models.arch import Stages, format_block, parse_stages, round_channels, scale_stages, with_kernels

MIXNET_S = [
    ["r1_k3_a1_p1_s11_e1_i16_o16"],
    ["r1_k3_a1.1_p1.1_s22_e6_i16_o24", "r1_k3_a1.1_p1.1_s11_e3_i24_o24"],
    ["r1_k3.5.7_a1_p1_s22_e6_i24_o40_se0.5_sw", "r3_k3.5_a1.1_p1.1_s11_e6_i40_o40_se0.5_sw"],
    ["r1_k3.5.7_a1_p1.1_s22_e6_i40_o80_se0.25_sw", "r2_k3.5_a1_p1.1_s11_e6_i80_o80_se0.25_sw"],
    ["r1_k3.5.7_a1.1_p1.1_s11_e6_i80_o120_se0.5_sw", "r2_k3.5.7.9_a1.1_p1.1_s11_e3_i120_o120_se0.5_sw"],
    ["r1_k3.5.7.9.11_a1_p1_s22_e6_i120_o200_se0.5_sw", "r2_k3.5.7.9_a1_p1.1_s11_e6_i200_o200_se0.5_sw"],
]

MIXNET_M = [
    ["r1_k3_a1_p1_s11_e1_i24_o24"],
    ["r1_k3.5.7_a1.1_p1.1_s22_e6_i24_o32", "r1_k3_a1.1_p1.1_s11_e3_i32_o32"],
    ["r1_k3.5.7.9_a1_p1_s22_e6_i32_o40_se0.5_sw", "r3_k3.5_a1.1_p1.1_s11_e6_i40_o40_se0.5_sw"],
    ["r1_k3.5.7_a1_p1_s22_e6_i40_o80_se0.25_sw", "r3_k3.5.7.9_a1.1_p1.1_s11_e6_i80_o80_se0.25_sw"],
    ["r1_k3_a1_p1_s11_e6_i80_o120_se0.5_sw", "r3_k3.5.7.9_a1.1_p1.1_s11_e3_i120_o120_se0.5_sw"],
    ["r1_k3.5.7.9_a1_p1_s22_e6_i120_o200_se0.5_sw", "r3_k3.5.7.9_a1_p1.1_s11_e6_i200_o200_se0.5_sw"],
]

# MobileNetV1 (Howard et al. 2017; timm's mobilenetv1_100): stem 32, no head conv, ReLU6.
MOBILENET_V1 = [
    ["r1_k3_a1_p1_s11_e1_i32_o64_pact_noskip"],
    ["r2_k3_a1_p1_s22_e1_i64_o128_pact_noskip"],
    ["r2_k3_a1_p1_s22_e1_i128_o256_pact_noskip"],
    ["r6_k3_a1_p1_s22_e1_i256_o512_pact_noskip"],
    ["r2_k3_a1_p1_s22_e1_i512_o1024_pact_noskip"],
]

# MobileNetV2 (Sandler et al. 2018; torchvision's mobilenet_v2): stem 32, head 1280, ReLU6.
MOBILENET_V2 = [
    ["r1_k3_a1_p1_s11_e1_i32_o16"],
    ["r2_k3_a1_p1_s22_e6_i16_o24"],
    ["r3_k3_a1_p1_s22_e6_i24_o32"],
    ["r4_k3_a1_p1_s22_e6_i32_o64"],
    ["r3_k3_a1_p1_s11_e6_i64_o96"],
    ["r3_k3_a1_p1_s22_e6_i96_o160"],
    ["r1_k3_a1_p1_s11_e6_i160_o320"],
]

ACTIVATIONS = ("relu", "relu6")
SPLITS = ("equal", "exponential")


@dataclass(frozen=True)
class MixNetConfig:
    """Everything that defines a MixNet architecture (not its head size or training options).

    Attributes:
        stages: unscaled block rows, grouped in stages.
        stem_channels: width of the 3x3 stride-2 stem conv before scaling.
        head_channels: width of the final 1x1 conv (not scaled by the width multiplier unless
            ``scale_head``); 0 for no head conv (MobileNetV1: the last block's output is pooled).
        width_mult: channel multiplier, rounded with :func:`mixnet.models.arch.round_channels`.
        depth_mult: repeat multiplier per stage (timm's ``depth_trunc='round'``).
        drop_rate: default dropout before the classifier.
        padding: ``symmetric`` (PyTorch) or ``same`` (TensorFlow "SAME", the tf_ models).
        bn_eps: BatchNorm epsilon (1e-3 for the TF-ported weights, 1e-5 for timm's own).
        activation: the base activation of the stem, the head and every block without ``sw``:
            ``relu`` (MixNet) or ``relu6`` (MobileNets).
        scale_head: a width multiplier above 1 widens the head too, ``max(head, round(head x width))``
            (MobileNetV2 as torchvision and timm build it).
        dw_split: channel split of every depthwise MixConv: ``equal`` or ``exponential`` (paper 3.3).
        dw_dilated: the paper's dilated variant: in every depthwise MixConv a kernel k > 3 is a 3x3 with
            dilation (k - 1) // 2 (same receptive field, fewer weights).
    """

    stages: Stages
    stem_channels: int
    head_channels: int = 1536
    width_mult: float = 1.0
    depth_mult: float = 1.0
    drop_rate: float = 0.2
    padding: Padding = "symmetric"
    bn_eps: float = 1e-5
    activation: str = "relu"
    scale_head: bool = False
    dw_split: Split = "equal"
    dw_dilated: bool = False

    def __post_init__(self) -> None:
        check_padding(self.padding)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.dw_split not in SPLITS:
            raise ValueError(f"dw_split must be one of {', '.join(SPLITS)}, got {self.dw_split!r}")
        if (isinstance(self.head_channels, int) and self.head_channels < 0) or (
            isinstance(self.stem_channels, int) and self.stem_channels < 1
        ):
            raise ValueError("head_channels must be >= 0 (0: no head conv) and stem_channels >= 1")
        if not self.stages or not all(self.stages):
            raise ValueError("a MixNet needs at least one stage and no empty stage")
        if self.width_mult <= 0 or self.depth_mult <= 0:
            raise ValueError("width and depth multipliers must be positive")
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        widths = [self.stem_channels] + [b.out_channels for s in self.stages for b in s]
        ins = [b.in_channels for s in self.stages for b in s]
        if ins != widths[:-1]:
            raise ValueError(f"each block's input width must be the previous output width: {ins} vs {widths[:-1]}")

    @classmethod
    def from_strings(
        cls, stages: Sequence[Sequence[str]] | Sequence[str], stem_channels: int, **kwargs
    ) -> MixNetConfig:
        """Builds a config from TF block strings (a list of stages, or one string per stage)."""
        return cls(stages=parse_stages(stages), stem_channels=stem_channels, **kwargs)

    def scaled_stages(self) -> Stages:
        """The stages after the width and depth multipliers: what the model is built from."""
        return scale_stages(self.stages, self.width_mult, self.depth_mult)

    @property
    def scaled_stem_channels(self) -> int:
        """Stem width after the width multiplier."""
        return round_channels(self.stem_channels, self.width_mult)

    @property
    def scaled_head_channels(self) -> int:
        """Head width after the width multiplier (only with ``scale_head``); 0 when there is no head conv."""
        if self.scale_head and self.head_channels:
            return max(self.head_channels, round_channels(self.head_channels, self.width_mult))
        return self.head_channels

    @property
    def num_features(self) -> int:
        """Width of the pooled features: the head conv's, or the last block's without a head conv."""
        return self.scaled_head_channels or self.scaled_stages()[-1][-1].out_channels

    def with_kernels(self, spec: KernelSpec | str) -> MixNetConfig:
        """This architecture with every depthwise conv following ``spec`` (a :class:`KernelSpec` or its text)."""
        spec = KernelSpec.parse(spec) if isinstance(spec, str) else spec
        return self.replace(
            stages=with_kernels(self.stages, spec.kernels), dw_split=spec.split, dw_dilated=spec.dilated
        )

    def replace(self, **changes) -> MixNetConfig:
        """A copy with some fields changed (configs are frozen, so nothing is shared mutably)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON-able values: every field, ``stages`` as lists of TF block strings."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["stages"] = [[format_block(b) for b in stage] for stage in self.stages]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MixNetConfig:
        """Rebuilds a config from :meth:`to_dict` output.

        Raises:
            ValueError: unknown fields (named), a malformed block string or a bad value.
        """
        return cls(**_fields(d, require_all=True))

    def diff(self, other: MixNetConfig) -> dict:
        """The fields of ``other`` that differ from this config's, as :meth:`to_dict` values."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: v for k, v in theirs.items() if mine[k] != v}

    def updated(self, changes: dict) -> MixNetConfig:
        """This config with :meth:`diff`-style ``changes`` applied (the inverse of :meth:`diff`)."""
        return self.replace(**_fields(changes, require_all=False)) if changes else self


@dataclass(frozen=True)
class KernelSpec:
    """The depthwise kernel of one point of the paper's kernel study, applied to every depthwise conv.

    Text form: ``k7`` (one 7x7 kernel), ``k3.5.7`` (MixConv, three groups), with ``-exp`` for the
    exponential channel split and ``-dil`` for dilated 3x3 kernels: ``k3.5.7.9-exp``, ``k9-dil``.

    Attributes:
        kernels: kernel size per channel group (odd, 1 to 6 groups in the paper).
        split: ``equal`` or ``exponential``.
        dilated: kernels above 3 as dilated 3x3s.
    """

    kernels: tuple[int, ...]
    split: Split = "equal"
    dilated: bool = False

    def __post_init__(self) -> None:
        if not self.kernels or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernel sizes must be odd positive integers, got {self.kernels}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")

    @classmethod
    def mixconv(cls, groups: int, **kwargs) -> KernelSpec:
        """The paper's MixConv of ``groups`` groups: kernels 3, 5, ..., 2 x groups + 1."""
        if groups < 1:
            raise ValueError(f"a MixConv needs >= 1 group, got {groups}")
        return cls(tuple(range(3, 2 * groups + 2, 2)), **kwargs)

    @classmethod
    def parse(cls, text: str) -> KernelSpec:
        """Reads the text form (``k3.5.7-exp``); a bare ``3.5.7`` is accepted too.

        Raises:
            ValueError: naming the malformed part.
        """
        head, *options = str(text).strip().split("-")
        sizes = head[1:] if head.startswith("k") else head
        try:
            kernels = tuple(int(k) for k in sizes.split("."))
        except ValueError:
            raise ValueError(f"bad kernel spec {text!r}: expected e.g. k7, k3.5.7, k3.5.7-exp or k9-dil") from None
        unknown = set(options) - {"exp", "dil"}
        if unknown or len(set(options)) != len(options):
            raise ValueError(f"bad kernel spec {text!r}: options are -exp and -dil, each at most once")
        return cls(kernels, "exponential" if "exp" in options else "equal", "dil" in options)

    def __str__(self) -> str:
        text = "k" + ".".join(map(str, self.kernels))
        return text + ("-exp" if self.split == "exponential" else "") + ("-dil" if self.dilated else "")


def _fields(d: dict, *, require_all: bool) -> dict:
    names = {f.name for f in dataclasses.fields(MixNetConfig)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown architecture field(s): {', '.join(sorted(unknown))}")
    required = {f.name for f in dataclasses.fields(MixNetConfig) if f.default is dataclasses.MISSING}
    if require_all and required - set(d):
        raise ValueError(f"missing architecture field(s): {', '.join(sorted(required - set(d)))}")
    out = dict(d)
    if "stages" in out:
        out["stages"] = parse_stages(out["stages"])
    return out


_S = MixNetConfig.from_strings(MIXNET_S, stem_channels=16, drop_rate=0.2)
_M = MixNetConfig.from_strings(MIXNET_M, stem_channels=24, drop_rate=0.25)
_TF = {"padding": "same", "bn_eps": 1e-3}

_MOBILENET = {"activation": "relu6", "drop_rate": 0.2}

CONFIGS: dict[str, MixNetConfig] = {
    "mixnet_s": _S,
    "mixnet_m": _M,
    "mixnet_l": _M.replace(width_mult=1.3),
    "mixnet_xl": _M.replace(width_mult=1.6, depth_mult=1.2),  # timm's, not in the paper
    "tf_mixnet_s": _S.replace(**_TF),
    "tf_mixnet_m": _M.replace(**_TF),
    "tf_mixnet_l": _M.replace(width_mult=1.3, **_TF),
    "mobilenet_v1": MixNetConfig.from_strings(MOBILENET_V1, stem_channels=32, head_channels=0, **_MOBILENET),
    "mobilenet_v2": MixNetConfig.from_strings(
        MOBILENET_V2, stem_channels=32, head_channels=1280, scale_head=True, **_MOBILENET
    ),
}

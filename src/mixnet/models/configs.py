"""The MixNet tables of the paper (Tan & Le, 2019, figure 9 / the official TF code) as data.

Each inner list is a stage; a stage is what the depth multiplier scales as a whole (timm's grouping,
which its weights and the published MixNet-XL depend on). MixNet-L and -XL are MixNet-M scaled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mixnet.layers.padding import Padding, check_padding
from mixnet.models.arch import Stages, format_block, parse_stages, round_channels, scale_stages

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


@dataclass(frozen=True)
class MixNetConfig:
    """Everything that defines a MixNet architecture (not its head size or training options).

    Attributes:
        stages: unscaled block rows, grouped in stages.
        stem_channels: width of the 3x3 stride-2 stem conv before scaling.
        head_channels: width of the final 1x1 conv (not scaled by the width multiplier).
        width_mult: channel multiplier, rounded with :func:`mixnet.models.arch.round_channels`.
        depth_mult: repeat multiplier per stage (timm's ``depth_trunc='round'``).
        drop_rate: default dropout before the classifier.
        padding: ``symmetric`` (PyTorch) or ``same`` (TensorFlow "SAME", the tf_ models).
        bn_eps: BatchNorm epsilon (1e-3 for the TF-ported weights, 1e-5 for timm's own).
    """

    stages: Stages
    stem_channels: int
    head_channels: int = 1536
    width_mult: float = 1.0
    depth_mult: float = 1.0
    drop_rate: float = 0.2
    padding: Padding = "symmetric"
    bn_eps: float = 1e-5

    def __post_init__(self) -> None:
        check_padding(self.padding)
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

CONFIGS: dict[str, MixNetConfig] = {
    "mixnet_s": _S,
    "mixnet_m": _M,
    "mixnet_l": _M.replace(width_mult=1.3),
    "mixnet_xl": _M.replace(width_mult=1.6, depth_mult=1.2),  # timm's, not in the paper
    "tf_mixnet_s": _S.replace(**_TF),
    "tf_mixnet_m": _M.replace(**_TF),
    "tf_mixnet_l": _M.replace(width_mult=1.3, **_TF),
}

"""Architecture as data: one frozen dataclass per block row, and the TF block-string notation.

A block string such as ``r3_k3.5_a1.1_p1.1_s11_e6_i40_o40_se0.5_sw`` is only the text form of a
:class:`BlockArgs`; :func:`parse_block` and :func:`format_block` convert between the two and round-trip.
Width and depth multipliers (:func:`round_channels`, :func:`scale_stages`) follow the TF reference and
timm, so scaled models (MixNet-L, -XL) get exactly the published channel and repeat counts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Longer tokens first: "pact" must not be read as "p" + "act", nor "se" as "s" + "e".
_TOKEN = re.compile(r"^(se|sw|noskip|pact|r|k|a|p|s|e|i|o)(.*)$")


@dataclass(frozen=True)
class BlockArgs:
    """One row of a MixNet (or MobileNet) table: ``repeats`` identical inverted-residual blocks.

    Attributes:
        repeats: number of blocks; only the first one is strided and changes the width.
        kernel_sizes: depthwise MixConv kernel size per channel group (``k3.5.7``).
        expand_groups: groups of the 1x1 expansion conv (``a1.1`` -> 2).
        project_groups: groups of the 1x1 projection conv (``p1.1`` -> 2).
        stride: stride of the first block.
        expand_ratio: expanded width = input width * ratio; 1 means no expansion conv.
        in_channels: input width of the first block.
        out_channels: output width.
        se_ratio: squeeze-excite width relative to the block's input width; None for no SE.
        swish: swish activation in the block instead of the network's base activation (``sw``).
        project_act: activation after the projection conv's BN (``pact``; MobileNetV1's depthwise-separable
            block, whose pointwise conv is followed by BN and ReLU6).
        skip: identity shortcut when stride is 1 and widths match; ``noskip`` turns it off (MobileNetV1
            has no shortcuts).
    """

    repeats: int
    kernel_sizes: tuple[int, ...]
    expand_groups: int
    project_groups: int
    stride: int
    expand_ratio: float
    in_channels: int
    out_channels: int
    se_ratio: float | None = None
    swish: bool = False
    project_act: bool = False
    skip: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.repeats < 1:
            problems.append(f"repeats must be >= 1, got {self.repeats}")
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            problems.append(f"kernel sizes must be odd and positive, got {self.kernel_sizes}")
        if self.expand_groups < 1 or self.project_groups < 1:
            problems.append("expand/project groups must be >= 1")
        if self.stride not in (1, 2):
            problems.append(f"stride must be 1 or 2, got {self.stride}")
        if self.expand_ratio <= 0:
            problems.append(f"expand ratio must be > 0, got {self.expand_ratio}")
        if self.in_channels < 1 or self.out_channels < 1:
            problems.append("channel counts must be >= 1")
        if self.se_ratio is not None and not 0 < self.se_ratio <= 1:
            problems.append(f"se ratio must be in (0, 1], got {self.se_ratio}")
        if problems:
            raise ValueError("invalid block: " + "; ".join(problems))

    @property
    def mid_channels(self) -> int:
        """Width after the expansion conv."""
        return int(self.in_channels * self.expand_ratio)

    @property
    def se_channels(self) -> int:
        """Bottleneck width of the squeeze-excite (0 without SE)."""
        return 0 if self.se_ratio is None else max(1, int(self.in_channels * self.se_ratio))


def _number(text: str, token: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad number in block-string token {token!r}") from None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _groups(spec: str, token: str) -> int:
    """``1`` -> 1 group, ``1.1`` -> 2 groups (MixNet's grouped 1x1 convs only use kernel 1)."""
    parts = spec.split(".")
    if any(p != "1" for p in parts):
        raise ValueError(f"only 1x1 expand/project kernels are supported, got {token!r}")
    return len(parts)


# Tokens without a value: token -> (field, value it sets).
_FLAGS = {"sw": ("swish", True), "pact": ("project_act", True), "noskip": ("skip", False)}


def parse_block(text: str) -> BlockArgs:
    """Parses one TF block string (``r1_k3.5.7_a1_p1.1_s22_e6_i40_o80_se0.25_sw``).

    Besides the TF tokens, ``pact`` (activated projection) and ``noskip`` (no shortcut) describe
    MobileNetV1's depthwise-separable blocks.

    Raises:
        ValueError: naming the unknown, missing or malformed token.
    """
    fields: dict[str, object] = {"expand_groups": 1, "project_groups": 1, "se_ratio": None}
    seen = set()
    for token in text.strip().split("_"):
        m = _TOKEN.match(token)
        if not m:
            raise ValueError(f"unknown token {token!r} in block string {text!r}")
        key, value = m.groups()
        if key in seen:
            raise ValueError(f"token {key!r} appears twice in block string {text!r}")
        seen.add(key)
        if key in _FLAGS:
            if value:
                raise ValueError(f"unknown token {token!r} in block string {text!r}")
            fields[_FLAGS[key][0]] = _FLAGS[key][1]
        elif key == "k":
            fields["kernel_sizes"] = tuple(int(_number(v, token)) for v in value.split("."))
        elif key == "a":
            fields["expand_groups"] = _groups(value, token)
        elif key == "p":
            fields["project_groups"] = _groups(value, token)
        elif key == "s":
            strides = set(value)
            if len(value) not in (1, 2) or len(strides) != 1 or not value.isdigit():
                raise ValueError(f"stride must be one digit or two equal digits, got {token!r}")
            fields["stride"] = int(value[0])
        elif key == "se":
            fields["se_ratio"] = _number(value, token)
        elif key == "e":
            fields["expand_ratio"] = _number(value, token)
        else:
            name = {"r": "repeats", "i": "in_channels", "o": "out_channels"}[key]
            fields[name] = int(_number(value, token))
    missing = {"r", "k", "s", "e", "i", "o"} - seen
    if missing:
        raise ValueError(f"block string {text!r} lacks token(s) {sorted(missing)}")
    return BlockArgs(**fields)  # type: ignore[arg-type]


def format_block(b: BlockArgs) -> str:
    """Formats a block in the TF notation; ``parse_block(format_block(b)) == b``."""
    parts = [
        f"r{b.repeats}",
        "k" + ".".join(map(str, b.kernel_sizes)),
        "a" + ".".join(["1"] * b.expand_groups),
        "p" + ".".join(["1"] * b.project_groups),
        f"s{b.stride}{b.stride}",
        f"e{_fmt(b.expand_ratio)}",
        f"i{b.in_channels}",
        f"o{b.out_channels}",
    ]
    if b.se_ratio is not None:
        parts.append(f"se{_fmt(b.se_ratio)}")
    parts.extend(token for token, (name, value) in _FLAGS.items() if getattr(b, name) == value)
    return "_".join(parts)


Stages = tuple[tuple[BlockArgs, ...], ...]


def expand_rows(stage: tuple[BlockArgs, ...]) -> list[BlockArgs]:
    """Unrolls the rows of a stage into one BlockArgs per block (only the first of a row strides)."""
    blocks = []
    for row in stage:
        blocks.append(dataclasses.replace(row, repeats=1))
        rest = dataclasses.replace(row, repeats=1, stride=1, in_channels=row.out_channels)
        blocks.extend([rest] * (row.repeats - 1))
    return blocks


def parse_stages(stages: Sequence[Sequence[str]] | Sequence[str]) -> Stages:
    """Parses stages of block strings; a flat list of strings becomes one block per stage."""
    return tuple(tuple(parse_block(s) for s in ([stage] if isinstance(stage, str) else stage)) for stage in stages)


def round_channels(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """TF/timm width rounding: to a multiple of ``divisor``, never more than 10% below the target.

    Applied at multiplier 1.0 too, as TF and timm do (a custom width of 20 becomes 24).
    """
    target = channels * multiplier
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * target:
        rounded += divisor
    return rounded


def _scale_repeats(repeats: list[int], multiplier: float) -> list[int]:
    """Scales the repeats of one stage as timm does with ``depth_trunc='round'``.

    The stage total is scaled and rounded (Python's round), then handed out from the LAST row
    backwards, so extra blocks land in the later, wider rows.
    """
    total, total_scaled = sum(repeats), round(sum(repeats) * multiplier)
    out = []
    for r in reversed(repeats):
        rs = max(1, round(r / total * total_scaled))
        out.append(rs)
        total -= r
        total_scaled -= rs
    return out[::-1]


def scale_stages(stages: Stages, width_mult: float = 1.0, depth_mult: float = 1.0) -> Stages:
    """Applies width and depth multipliers; returns new stages and never changes ``stages``."""
    out = []
    for stage in stages:
        repeats = [b.repeats for b in stage]
        if depth_mult != 1.0:
            repeats = _scale_repeats(repeats, depth_mult)
        out.append(
            tuple(
                dataclasses.replace(
                    b,
                    repeats=r,
                    in_channels=round_channels(b.in_channels, width_mult),
                    out_channels=round_channels(b.out_channels, width_mult),
                )
                for b, r in zip(stage, repeats, strict=True)
            )
        )
    return tuple(out)


def with_kernels(stages: Stages, kernel_sizes: Sequence[int]) -> Stages:
    """The same stages with every depthwise conv given ``kernel_sizes`` (one size, or MixConv groups)."""
    kernels = tuple(int(k) for k in kernel_sizes)
    return tuple(tuple(dataclasses.replace(b, kernel_sizes=kernels) for b in stage) for stage in stages)

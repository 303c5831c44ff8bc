"""Weight conversion between timm's MixNet state dicts and ours, with explicit key maps.

timm's MobileNetV1/V2 (``mobilenetv1_100``, ``mobilenetv2_100``) use the same layout and convert with
the same rules; torchvision's ``mobilenet_v2`` has its own (:func:`from_torchvision_mobilenet_v2`).

timm names a block's layers by position (``conv_pw``, ``bn1``, ...), and the meaning depends on the
block type: in the first block (no expansion, timm's DepthwiseSeparableConv) ``conv_pw`` is the
projection, elsewhere it is the expansion. A conv split in groups has one entry per group
(``conv_dw.0``, ``conv_dw.1``, ...), a single conv has none; ours always has ``convs.<g>``.
Every key must match exactly one rule, and the key count is checked both ways.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

# timm name -> our name, outside the blocks.
TOP_LEVEL = {
    "conv_stem": "stem.conv",
    "bn1": "stem.bn",
    "conv_head": "head.conv",
    "bn2": "head.bn",
    "classifier": "classifier",
}
# timm name -> our name inside an inverted-residual block (timm InvertedResidual).
BLOCK_WITH_EXPANSION = {
    "conv_pw": "expand_conv",
    "bn1": "expand_bn",
    "conv_dw": "dw_conv",
    "bn2": "dw_bn",
    "se.conv_reduce": "se.reduce",
    "se.conv_expand": "se.expand",
    "conv_pwl": "project_conv",
    "bn3": "project_bn",
}
# ... inside a block without expansion (timm DepthwiseSeparableConv).
BLOCK_WITHOUT_EXPANSION = {
    "conv_dw": "dw_conv",
    "bn1": "dw_bn",
    "se.conv_reduce": "se.reduce",
    "se.conv_expand": "se.expand",
    "conv_pw": "project_conv",
    "bn2": "project_bn",
}
# Layers that may be split in channel groups (timm MixedConv2d, our MixConv2d).
MIXED = {"conv_pw", "conv_dw", "conv_pwl"}

_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_OUR_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.(.+)$")
_PARAM = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


def _rename(name: str, table: Mapping[str, str], mixed_groups: Mapping[str, int] | None, key: str) -> str:
    """Renames ``<module>.<param>`` (timm -> ours when mixed_groups is None, else ours -> timm)."""
    for src, dst in table.items():
        if mixed_groups is None:  # timm -> ours
            m = re.fullmatch(re.escape(src) + r"(?:\.(\d+))?\." + _PARAM, name)
            if m and (src in MIXED or m.group(1) is None):
                if src in MIXED:
                    return f"{dst}.convs.{m.group(1) or 0}.{m.group(2)}"
                return f"{dst}.{m.group(2)}"
        else:  # ours -> timm
            m = re.fullmatch(re.escape(dst) + r"(?:\.convs\.(\d+))?\." + _PARAM, name)
            if m and ((src in MIXED) == (m.group(1) is not None)):
                if src in MIXED:
                    return f"{src}.{m.group(1)}.{m.group(2)}" if mixed_groups[dst] > 1 else f"{src}.{m.group(2)}"
                return f"{src}.{m.group(2)}"
    raise KeyError(f"no conversion rule for key {key!r}")


def _blocks(keys: list[str], pattern: re.Pattern) -> dict[tuple[int, int], list[str]]:
    out: dict[tuple[int, int], list[str]] = {}
    for k in keys:
        m = pattern.match(k)
        if m:
            out.setdefault((int(m.group(1)), int(m.group(2))), []).append(m.group(3))
    return out


def _check_count(src: Mapping, out: Mapping, direction: str) -> None:
    if len(out) != len(src):
        raise AssertionError(f"{direction}: {len(src)} keys in, {len(out)} out (two keys mapped to one)")


def from_timm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Converts a timm ``mixnet_*`` / ``tf_mixnet_*`` state dict to ours.

    Raises:
        KeyError: a key that no rule maps (naming it).
    """
    blocks = _blocks(list(state_dict), _TIMM_BLOCK)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = _TIMM_BLOCK.match(key)
        if m:
            s, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            expands = any(n.startswith("conv_pwl") for n in blocks[(s, b)])
            table = BLOCK_WITH_EXPANSION if expands else BLOCK_WITHOUT_EXPANSION
            new = f"stages.{s}.{b}." + _rename(rest, table, None, key)
        else:
            new = _rename(key, TOP_LEVEL, None, key)
        out[new] = value
    _check_count(state_dict, out, "from_timm")
    return out


def to_timm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Converts our state dict to timm's layout (loads into ``timm.create_model(<same name>)``).

    Raises:
        KeyError: a key that no rule maps (naming it).
    """
    blocks = _blocks(list(state_dict), _OUR_BLOCK)
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = _OUR_BLOCK.match(key)
        if m:
            s, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
            names = blocks[(s, b)]
            table = BLOCK_WITH_EXPANSION if any(n.startswith("expand_conv") for n in names) else BLOCK_WITHOUT_EXPANSION
            groups = {
                layer: len({n for n in names if n.startswith(layer + ".convs.") and n.endswith(".weight")})
                for layer in ("expand_conv", "dw_conv", "project_conv")
            }
            new = f"blocks.{s}.{b}." + _rename(rest, table, groups, key)
        else:
            new = _rename(key, TOP_LEVEL, {}, key)
        out[new] = value
    _check_count(state_dict, out, "to_timm")
    return out


def is_timm_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for timm's key layout (``conv_stem``, ``blocks.*``), False for ours."""
    return "conv_stem.weight" in state_dict or any(k.startswith("blocks.") for k in state_dict)


# torchvision mobilenet_v2: features.<i>.conv.<j> inside a block; the first block has no expansion.
_TV_FIRST_BLOCK = {
    "conv.0.0": "dw_conv.convs.0",
    "conv.0.1": "dw_bn",
    "conv.1": "project_conv.convs.0",
    "conv.2": "project_bn",
}
_TV_BLOCK = {
    "conv.0.0": "expand_conv.convs.0",
    "conv.0.1": "expand_bn",
    "conv.1.0": "dw_conv.convs.0",
    "conv.1.1": "dw_bn",
    "conv.2": "project_conv.convs.0",
    "conv.3": "project_bn",
}
_TV_KEY = re.compile(r"^features\.(\d+)\.(.+)\." + _PARAM + "$")


def from_torchvision_mobilenet_v2(
    state_dict: Mapping[str, torch.Tensor], stage_lengths: tuple[int, ...] = (1, 2, 3, 4, 3, 3, 1)
) -> dict[str, torch.Tensor]:
    """Converts torchvision's ``mobilenet_v2`` state dict (any width) to ours (``mobilenet_v2``).

    Args:
        state_dict: torchvision's keys (``features.<i>...``, ``classifier.1.*``).
        stage_lengths: blocks per stage (MobileNetV2's 17 blocks in 7 stages).

    Raises:
        KeyError: a key that no rule maps (naming it).
    """
    position = [(s, b) for s, n in enumerate(stage_lengths) for b in range(n)]  # features.<i + 1>
    head = len(position) + 1
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("classifier.1."):
            out["classifier." + key.removeprefix("classifier.1.")] = value
            continue
        m = _TV_KEY.match(key)
        if not m:
            raise KeyError(f"no conversion rule for key {key!r}")
        i, layer, param = int(m.group(1)), m.group(2), m.group(3)
        if i in (0, head) and layer in ("0", "1"):
            new = f"{'stem' if i == 0 else 'head'}.{'conv' if layer == '0' else 'bn'}"
        elif 1 <= i < head and layer in (table := _TV_FIRST_BLOCK if i == 1 else _TV_BLOCK):
            s, b = position[i - 1]
            new = f"stages.{s}.{b}.{table[layer]}"
        else:
            raise KeyError(f"no conversion rule for key {key!r}")
        out[f"{new}.{param}"] = value
    _check_count(state_dict, out, "from_torchvision_mobilenet_v2")
    return out

"""Exact rewrites of MixNet layers for inference: BN folding, fused MixConv, merged grouped 1x1, static SAME.

Every function here returns a new module computing the same function as its inputs (in eval mode, up
to float rounding); none mutates its arguments. The rewrites follow the usual deployment recipes:
BatchNorm folding as in ``torch.ao.nn.intrinsic`` / ``torch.fx.experimental.optimization.fuse``; a
MixConv as ONE depthwise conv whose kernel holds each group's smaller kernel zero-padded and centered
(the MixConv paper, section 3: "a MixConv with kernels 3, 5, 7 is a 7x7 depthwise conv with zeros");
TF "SAME" padding as a constant pad once the input size is known (what TF's own converters do).

Why centering is exact even for TF "SAME" at stride 2: the total SAME padding is
``(ceil(n / s) - 1) * s + k - n``, which grows by exactly 2 when k grows by 2, and the before-padding
``total // 2`` grows by exactly 1. So a k x k kernel centered in a kmax x kmax kernel sees the same
pixels under the big kernel's padding as under its own. That needs the total to be unclamped
(``k >= stride``), which :func:`can_fuse_depthwise` checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mixnet.layers.padding import SameConv2d, same_pad_amounts

PointwiseMerge = Literal["split", "grouped", "dense"]


class PadConv2d(nn.Conv2d):
    """A Conv2d after a constant (possibly asymmetric) zero pad: TF "SAME" for a known input size.

    Exports to ONNX as a Pad with constant pads, with no Shape op computing them at run time.
    """

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pad = tuple(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pads (left, right, top, bottom), then convolves."""
        return F.conv2d(F.pad(x, self.pad), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class SplitConcat(nn.Module):
    """Channel groups each through their own conv, outputs concatenated (MixConv's form, with biases)."""

    def __init__(self, convs: Sequence[nn.Conv2d], in_splits: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.in_splits = list(in_splits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Splits, convolves each part, concatenates."""
        parts = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)


def _clone_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Conv2d:
    """A conv of the same type, stride, padding and groups as ``conv``, with new weight and bias."""
    kwargs = dict(
        stride=conv.stride,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=bias is not None,
        padding=conv.padding,
        dtype=conv.weight.dtype,
        device=conv.weight.device,
    )
    if isinstance(conv, PadConv2d):
        new: nn.Conv2d = PadConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, pad=conv.pad, **kwargs)
    else:
        new = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, **kwargs)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new.eval()


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (scale, shift) that eval-mode ``bn`` applies: ``y = x * scale + shift``."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    # Folding in float64 keeps the folded weights within float32 rounding of the two-step computation.
    var, mean = bn.running_var.double(), bn.running_mean.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def fold_bn(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """``conv`` followed by a per-output-channel affine ``x * scale + shift``, as one conv with bias."""
    w = conv.weight.double() * scale.view(-1, 1, 1, 1)
    b = shift + (conv.bias.double() * scale if conv.bias is not None else 0)
    return _clone_conv(conv, w.to(conv.weight.dtype), b.to(conv.weight.dtype))


def fold_bn_into_groups(convs: Sequence[nn.Conv2d], bn: nn.BatchNorm2d) -> list[nn.Conv2d]:
    """Folds one BN over concatenated group outputs into each group's conv (its slice of channels)."""
    scale, shift = bn_scale_shift(bn)
    out, start = [], 0
    for conv in convs:
        end = start + conv.out_channels
        out.append(fold_bn(conv, scale[start:end], shift[start:end]))
        start = end
    if start != bn.num_features:
        raise ValueError(f"convs give {start} channels but the BatchNorm has {bn.num_features}")
    return out


def static_same(conv: nn.Conv2d, in_hw: tuple[int, int]) -> nn.Conv2d:
    """A dynamic TF "SAME" conv turned static for input size ``in_hw``: conv padding or a constant pad."""
    if not isinstance(conv, SameConv2d):
        return conv
    top, bottom = same_pad_amounts(in_hw[0], conv.kernel_size[0], conv.stride[0], conv.dilation[0])
    left, right = same_pad_amounts(in_hw[1], conv.kernel_size[1], conv.stride[1], conv.dilation[1])
    kw = dict(
        stride=conv.stride,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        dtype=conv.weight.dtype,
        device=conv.weight.device,
    )
    if top == bottom and left == right:  # symmetric: the conv's own padding is enough (and fastest)
        new: nn.Conv2d = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=(top, left), **kw)
    else:
        new = PadConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, pad=(left, right, top, bottom), **kw)
    with torch.no_grad():
        new.weight.copy_(conv.weight)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.eval()


def can_fuse_depthwise(convs: Sequence[nn.Conv2d]) -> bool:
    """True when depthwise group convs can become one depthwise conv with centered kernels.

    Needs: depthwise, square odd kernels, one stride and dilation 1 for all, zero padding, and each
    conv's padding the "centered" one of its kernel: ``k // 2`` symmetric, or dynamic TF SAME with
    ``k >= stride``. The SAME total ``(ceil(n / s) - 1) * s + k - n`` is negative for ``k < s`` at some
    sizes (k=1, s=2, even n: -1) and then clamped to 0, which breaks the "grows by exactly 2" argument:
    a 1x1 centered in a 3x3 would read the pixel one to the right and below.
    """
    first = convs[0]
    for c in convs:
        k = c.kernel_size[0]
        if c.groups != c.in_channels or c.in_channels != c.out_channels or c.kernel_size != (k, k) or k % 2 == 0:
            return False
        if c.stride != first.stride or c.dilation != (1, 1) or type(c) is not type(first):
            return False
        if c.padding_mode != "zeros" or isinstance(c, PadConv2d):
            return False
        if isinstance(c, SameConv2d):
            if k < max(c.stride):
                return False
        elif c.padding != (k // 2, k // 2):
            return False
    return True


def fuse_depthwise(convs: Sequence[nn.Conv2d]) -> nn.Conv2d:
    """One depthwise conv whose kernel holds each group's kernel zero-padded to the largest and centered.

    Raises:
        ValueError: when :func:`can_fuse_depthwise` is false for ``convs``.
    """
    if not can_fuse_depthwise(convs):
        raise ValueError("these convs cannot be fused into one depthwise conv (see can_fuse_depthwise)")
    kmax = max(c.kernel_size[0] for c in convs)
    channels = sum(c.out_channels for c in convs)
    first = convs[0]
    # New tensors follow the source weights, so a CUDA or float64 model stays one.
    like = {"dtype": first.weight.dtype, "device": first.weight.device}
    weight = torch.zeros(channels, 1, kmax, kmax, **like)
    has_bias = any(c.bias is not None for c in convs)
    bias = torch.zeros(channels, **like) if has_bias else None
    start = 0
    for c in convs:
        k, off, end = c.kernel_size[0], (kmax - c.kernel_size[0]) // 2, start + c.out_channels
        weight[start:end, :, off : off + k, off : off + k] = c.weight.detach()
        if c.bias is not None:
            bias[start:end] = c.bias.detach()
        start = end
    cls = SameConv2d if isinstance(first, SameConv2d) else nn.Conv2d
    pad = 0 if cls is SameConv2d else kmax // 2
    fused = cls(channels, channels, kmax, first.stride, pad, 1, channels, has_bias, **like)
    with torch.no_grad():
        fused.weight.copy_(weight)
        if bias is not None:
            fused.bias.copy_(bias)
    return fused.eval()


def merge_pointwise(convs: Sequence[nn.Conv2d], in_splits: Sequence[int], mode: PointwiseMerge) -> nn.Module:
    """Grouped 1x1 convs (one per channel group) as one module.

    Args:
        convs: the 1x1 convs, group ``i`` mapping ``in_splits[i]`` inputs to its outputs.
        in_splits: input channels per group.
        mode: ``split`` keeps split-convs-concat; ``grouped`` is one Conv2d with ``groups=len(convs)``
            (needs equal splits); ``dense`` is one dense 1x1 with a block-diagonal weight (zeros off
            the diagonal: more MACs, but one GEMM).

    Raises:
        ValueError: for an unknown mode, non-1x1 convs, or ``grouped`` with unequal splits.
    """
    if any(c.kernel_size != (1, 1) or c.stride != (1, 1) or c.groups != 1 for c in convs):
        raise ValueError("merge_pointwise needs dense 1x1 stride-1 convs")
    if len(convs) == 1:
        return convs[0]
    if mode == "split":
        return SplitConcat(convs, in_splits)
    c_in, c_out = sum(in_splits), sum(c.out_channels for c in convs)
    first = convs[0]
    like = {"dtype": first.weight.dtype, "device": first.weight.device}
    has_bias = any(c.bias is not None for c in convs)
    bias = torch.cat([c.bias.detach() if c.bias is not None else torch.zeros(c.out_channels, **like) for c in convs])
    if mode == "grouped":
        out_splits = [c.out_channels for c in convs]
        if len(set(in_splits)) != 1 or len(set(out_splits)) != 1:
            raise ValueError(
                f"a grouped merge needs equal channel splits, got in {list(in_splits)} -> out {out_splits}; "
                "use mode 'dense' or 'split'"
            )
        weight = torch.cat([c.weight.detach() for c in convs])
        merged = nn.Conv2d(c_in, c_out, 1, groups=len(convs), bias=has_bias, **like)
    elif mode == "dense":
        weight = torch.zeros(c_out, c_in, 1, 1, **like)
        i0 = o0 = 0
        for c, ci in zip(convs, in_splits, strict=True):
            weight[o0 : o0 + c.out_channels, i0 : i0 + ci] = c.weight.detach()
            i0, o0 = i0 + ci, o0 + c.out_channels
        merged = nn.Conv2d(c_in, c_out, 1, bias=has_bias, **like)
    else:
        raise ValueError(f"mode must be 'split', 'grouped' or 'dense', got {mode!r}")
    with torch.no_grad():
        merged.weight.copy_(weight)
        if has_bias:
            merged.bias.copy_(bias)
    return merged.eval()

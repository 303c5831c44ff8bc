"""Padding rules: PyTorch-style symmetric padding and TensorFlow "SAME" padding.

TensorFlow's "SAME" pads so that ``out = ceil(in / stride)``; when the total padding is odd the extra
pixel goes to the bottom/right. For stride 1 and odd effective kernels that is the same as symmetric
padding, so only strided convolutions need padding computed from the input size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Padding = Literal["symmetric", "same"]
PADDINGS: tuple[str, ...] = ("symmetric", "same")


def check_padding(padding: str) -> None:
    """Raises ValueError for an unknown padding mode."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def same_pad_amounts(size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Returns the (before, after) padding of TF "SAME" for one spatial dimension."""
    effective = (kernel_size - 1) * dilation + 1
    out = (size + stride - 1) // stride  # ceil(size / stride) in integers (TorchScript-friendly, no float)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> torch.Tensor:
    """Pads ``x`` (N, C, H, W) as TF "SAME" does for a conv with these (height, width) settings.

    The extra pixel of an odd total goes to the bottom/right.

    Registered with ``torch.fx.wrap``: the amounts depend on the input size, so a symbolic trace keeps
    this call as one graph node evaluated at run time instead of failing on (or freezing) the sizes.
    """
    top, bottom = same_pad_amounts(x.shape[-2], kernel_size[0], stride[0], dilation[0])
    left, right = same_pad_amounts(x.shape[-1], kernel_size[1], stride[1], dilation[1])
    return F.pad(x, [left, right, top, bottom])


torch.fx.wrap("pad_same")


def is_static_same(kernel_size: int, stride: int, dilation: int = 1) -> bool:
    """True when "SAME" padding does not depend on the input size (it is then symmetric)."""
    return stride == 1 and (dilation * (kernel_size - 1)) % 2 == 0


def symmetric_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding on each side that keeps the size at stride 1 (k // 2 for odd undilated kernels)."""
    return dilation * (kernel_size - 1) // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow "SAME" padding computed from each input's size.

    Used only where the padding depends on the input size (strided convs); elsewhere a plain
    ``nn.Conv2d`` with static padding is equivalent and faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pads like TF "SAME" (extra pixel bottom/right), then convolves without padding."""
        x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def create_conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    padding: Padding = "symmetric",
    bias: bool = False,
) -> nn.Conv2d:
    """Builds a square Conv2d with the requested padding rule, static wherever it can be."""
    check_padding(padding)
    if padding == "same" and not is_static_same(kernel_size, stride, dilation):
        return SameConv2d(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
    pad = symmetric_padding(kernel_size, dilation)
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, dilation, groups, bias)

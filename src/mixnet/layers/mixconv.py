"""MixConv: one convolution whose channel groups use different kernel sizes.

From "MixConv: Mixed Depthwise Convolutional Kernels" (Tan & Le, 2019), section 3. The same module
also gives MixNet's grouped 1x1 convolutions (``a1.1`` / ``p1.1`` in the block strings): input and
output channels split into groups, one convolution per group, outputs concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mixnet.layers.padding import Padding, create_conv2d, is_static_same, pad_same, symmetric_padding

# torch.fx patches a wrapped function in the namespaces that registered it: this module calls it too.
torch.fx.wrap("pad_same")

Split = Literal["equal", "exponential"]


def split_channels(channels: int, groups: int, method: Split = "equal") -> list[int]:
    """Splits ``channels`` into ``groups`` parts.

    ``equal``: ``channels // groups`` each, the remainder to the FIRST group (as TF and timm).
    ``exponential``: each group half the previous one, the last takes the rest (paper section 3.3:
    32 channels in 4 groups -> 16, 8, 4, 4).

    Raises:
        ValueError: for an unknown method or when a group would get no channel.
    """
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    if method == "equal":
        sizes = [channels // groups] * groups
        sizes[0] += channels - sum(sizes)
    elif method == "exponential":
        sizes = [channels // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(channels - sum(sizes))
    else:
        raise ValueError(f"split must be 'equal' or 'exponential', got {method!r}")
    if min(sizes) < 1:
        raise ValueError(f"cannot split {channels} channels into {groups} {method} groups: {sizes}")
    return sizes


class MixConv2d(nn.Module):
    """Mixed convolution: channel group ``i`` is convolved with ``kernel_size[i]``.

    With ``depthwise=True`` (the MixConv of the paper) input and output channels are equal and every
    group is a depthwise convolution. With ``depthwise=False`` each group is a dense convolution from
    its input slice to its output slice, which with 1x1 kernels is MixNet's grouped pointwise conv.
    A single kernel size gives a plain (depthwise) convolution with no split or concatenation.

    Args:
        in_channels: input channels.
        out_channels: output channels (must equal ``in_channels`` when depthwise).
        kernel_size: one size per group, or an int for a single group.
        stride: stride of every group.
        dilation: dilation of every group.
        depthwise: depthwise groups (MixConv) or dense groups (grouped pointwise conv).
        split: ``equal`` or ``exponential`` channel split.
        padding: ``symmetric`` (PyTorch) or ``same`` (TensorFlow "SAME").
        dilated: the paper's dilated alternative: a kernel k > 3 becomes a 3x3 with dilation
            ``(k - 1) // 2``, keeping its receptive field at fewer weights.
        bias: add a bias to every group.
        fused: (depthwise only) run all groups as ONE depthwise conv whose kernel is composed at every
            call from the group kernels, zero-padded to the largest size and centered. The result and the
            gradients of the group weights are the same as split-conv-concat (the padding zeros add
            nothing); one big depthwise conv is usually faster than several small ones plus a split and a
            concat, in training as well. The parameters and state dict do not change.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int = 1,
        dilation: int = 1,
        depthwise: bool = True,
        split: Split = "equal",
        padding: Padding = "symmetric",
        dilated: bool = False,
        bias: bool = False,
        fused: bool = False,
    ) -> None:
        super().__init__()
        kernel_sizes = [kernel_size] if isinstance(kernel_size, int) else list(kernel_size)
        if not kernel_sizes or any(k < 1 for k in kernel_sizes):
            raise ValueError(f"kernel sizes must be positive, got {kernel_size!r}")
        if depthwise and in_channels != out_channels:
            raise ValueError(f"a depthwise MixConv needs in == out channels, got {in_channels} -> {out_channels}")
        if dilated and dilation != 1:
            raise ValueError("dilated=True sets each group's dilation; leave dilation at 1")
        self.in_splits = split_channels(in_channels, len(kernel_sizes), split)
        self.out_splits = self.in_splits if depthwise else split_channels(out_channels, len(kernel_sizes), split)
        self.kernel_sizes = kernel_sizes
        self.depthwise = depthwise
        if fused and (not depthwise or dilated or any(k % 2 == 0 or k < 3 for k in kernel_sizes)):
            raise ValueError("fused=True needs a depthwise MixConv with odd kernel sizes >= 3 and no dilated option")
        self.fused = fused and len(kernel_sizes) > 1
        self.stride, self.dilation, self.padding = stride, dilation, padding
        # Decided here, from Python ints, so that forward() has no control flow on tensor sizes (torch.fx).
        self.fused_kernel = max(kernel_sizes)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fused_dynamic_same = padding == "same" and not is_static_same(self.fused_kernel, stride, dilation)
        self.convs = nn.ModuleList()
        for k, c_in, c_out in zip(kernel_sizes, self.in_splits, self.out_splits, strict=True):
            k_eff, d = (3, (k - 1) // 2) if dilated and k > 3 else (k, dilation)
            self.convs.append(
                create_conv2d(
                    c_in,
                    c_out,
                    k_eff,
                    stride=stride,
                    dilation=d,
                    groups=c_in if depthwise else 1,
                    padding=padding,
                    bias=bias,
                )
            )

    def fused_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The group kernels zero-padded to the largest size, centered and stacked, and the biases."""
        kmax = self.fused_kernel
        weights: list[torch.Tensor] = []
        biases: list[torch.Tensor] = []
        for conv in self.convs:
            weights.append(F.pad(conv.weight, [(kmax - conv.kernel_size[0]) // 2] * 4))
            b = conv.bias
            if b is not None:
                biases.append(b)
        bias: torch.Tensor | None = None
        if len(biases) > 0:
            bias = torch.cat(biases)
        return torch.cat(weights), bias

    def _forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.fused_weight()
        k, s, d = self.fused_kernel, self.stride, self.dilation
        if self.fused_dynamic_same:
            # Centering also holds for TF "SAME" at stride 2: growing k by 2 grows the total padding by
            # 2 and its top/left part by exactly 1, so a centered small kernel sees the same pixels.
            x = pad_same(x, (k, k), (s, s), (d, d))
            return F.conv2d(x, weight, bias, s, 0, d, self.in_channels)
        return F.conv2d(x, weight, bias, s, symmetric_padding(k, d), d, self.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolves each channel group with its own kernel and concatenates the results."""
        if self.fused:
            return self._forward_fused(x)
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.split(x, self.in_splits, dim=1)
        # Indexing rather than zip(): the split is a Proxy under torch.fx, and TorchScript has no zip(strict=).
        outs: list[torch.Tensor] = []
        for i, conv in enumerate(self.convs):
            outs.append(conv(parts[i]))
        return torch.cat(outs, dim=1)

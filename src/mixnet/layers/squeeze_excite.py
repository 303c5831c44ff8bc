"""Squeeze-and-excitation as used by MnasNet/MixNet: 1x1 convs with bias, sigmoid gate."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool -> reduce -> act -> expand -> sigmoid -> scale.

    Args:
        channels: channels of the gated tensor (the block's expanded width).
        reduced: width of the bottleneck (MixNet: block input channels times the SE ratio).
        act_layer: activation between the two convs (the block's own activation).
    """

    def __init__(self, channels: int, reduced: int, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = act_layer()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scales each channel of ``x`` by a gate computed from its global average."""
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(self.act(self.reduce(s)))
        return x * s.sigmoid()

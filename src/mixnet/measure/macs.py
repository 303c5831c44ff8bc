"""Multiply-accumulates counted by running the model once (the same counter for every network)."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(model: nn.Module, img_size: int, in_chans: int = 3) -> float:
    """Multiply-accumulates of one image (convolutions, linear layers, matrix products), in millions.

    Counted by ``torch.utils.flop_counter`` on a forward pass, so it works for any network, ours or
    another library's; :mod:`mixnet.models.complexity` computes ours from the architecture instead.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, in_chans, img_size, img_size))
    return counter.get_total_flops() / 2 / 1e6

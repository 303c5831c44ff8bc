"""Weight EMA as the paper's TF code keeps it, on ``torch.optim.swa_utils.AveragedModel``.

TF's ``ExponentialMovingAverage(decay=0.9999, num_updates=global_step)`` uses the decay
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average follows the weights closely early
on and is useful in short runs too; it averages the BN moving mean/variance as well (the TF code adds
them to the averaged variables). AveragedModel with ``use_buffers=True`` gives the buffer averaging and
the update count; only the decay rule is ours (``get_ema_multi_avg_fn`` has a fixed decay).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def tf_ema_decay(decay: float, num_updates: int) -> float:
    """TF's EMA decay after ``num_updates`` updates: ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1 + num_updates) / (10 + num_updates))


def _tf_ema_multi_avg_fn(decay: float):
    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        if not (torch.is_floating_point(ema[0]) or torch.is_complex(ema[0])):
            # Integer buffers (BN's num_batches_tracked) are counters, not weights: copy them.
            torch._foreach_copy_(ema, current)
            return
        # AveragedModel copies the weights on its first call (n = 0) and counts that as an update, so
        # n here is TF's num_updates of the update being applied.
        d = tf_ema_decay(decay, int(num_averaged))
        torch._foreach_lerp_(ema, current, 1.0 - d)

    return update


def create_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``model`` (parameters and buffers); call ``.update_parameters(model)`` after each step."""
    if not 0 < decay < 1:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
    return AveragedModel(model, multi_avg_fn=_tf_ema_multi_avg_fn(decay), use_buffers=True)

"""Learning-rate schedules, stepped once per optimizer step, as ``torch.optim.lr_scheduler.LambdaLR``.

``step`` is the MnasNet/MixNet recipe from the official TF code: ``exponential_decay(lr, step,
2.4 epochs, 0.97, staircase=True)`` counted from step 0, replaced by a linear warmup from 0 during the
first 5 epochs (so the first post-warmup lr is already ``0.97**2`` of the peak). ``cosine`` is the
usual half-cosine from the peak down to ``min_lr_ratio`` after the same warmup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class LrFactor:
    """The lr multiplier at optimizer step ``t`` (a callable for LambdaLR; plain floats, so it pickles).

    Attributes:
        kind: ``step`` or ``cosine``.
        steps_per_epoch: optimizer steps per epoch.
        total_epochs: length of the run (cosine).
        warmup_epochs: linear warmup length.
        decay_epochs: staircase period (step).
        decay_rate: factor per period (step).
        min_lr_ratio: final factor (cosine).
    """

    kind: str
    steps_per_epoch: int
    total_epochs: float
    warmup_epochs: float = 0.0
    decay_epochs: float = 2.4
    decay_rate: float = 0.97
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("step", "cosine"):
            raise ValueError(f"unknown schedule {self.kind!r}; use step or cosine")
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def __call__(self, t: int) -> float:
        """The factor after ``t`` optimizer steps."""
        warmup = self.warmup_epochs * self.steps_per_epoch
        if t < warmup:
            return t / warmup
        if self.kind == "step":
            return self.decay_rate ** math.floor(t / (self.decay_epochs * self.steps_per_epoch))
        total = self.total_epochs * self.steps_per_epoch
        progress = min(1.0, (t - warmup) / max(1.0, total - warmup))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def create_scheduler(optimizer: torch.optim.Optimizer, factor: LrFactor) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying ``factor`` to every group's initial lr (call ``.step()`` after each optimizer step)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

"""Stochastic depth ("drop path", Huang et al. 2016), per sample, as in EfficientNet and MixNet training.

Written here rather than taken from torchvision (``torchvision.ops.StochasticDepth``, same arithmetic and
the same random draws) so that the model core needs no torchvision.
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zeroes the whole of ``x`` for a sample with probability ``p`` when training; scales the rest by 1/(1-p).

    Registered with ``torch.fx.wrap``: the mask shape comes from ``x.dim()``, which a symbolic trace
    cannot turn into a Python int, so the trace keeps this call as one node.
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep)


torch.fx.wrap("drop_path")


class DropPath(nn.Module):
    """Zeroes the whole residual branch of a sample with probability ``p`` in training; scales the rest by 1/(1-p).

    Args:
        p: drop probability, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drops samples' branches in training; the identity in eval."""
        if not self.training or self.p == 0.0:
            return x
        return drop_path(x, self.p, True)

    def extra_repr(self) -> str:
        return f"p={self.p}"

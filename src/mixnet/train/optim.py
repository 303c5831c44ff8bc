"""Optimizers: TensorFlow-style RMSProp (the MixNet/MnasNet recipe), SGD and AdamW, with weight-decay groups.

``torch.optim.RMSprop`` differs from TF's ``tf.train.RMSPropOptimizer`` in three ways that matter with
the paper's eps of 1e-3 (timm's ``RMSpropTF`` makes the same corrections):

1. TF adds eps *inside* the square root: ``g / sqrt(ms + eps)``; torch adds it outside,
   ``g / (sqrt(ms) + eps)``. With eps = 1e-3 the two differ a lot (sqrt(1e-3) ~ 0.03).
2. TF starts the mean square at 1, not 0, so the first steps are not huge.
3. TF folds the learning rate into the momentum buffer (``mom = m * mom + lr * g / rms``;
   ``w -= mom``), so a learning-rate change acts on new gradients only.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class RMSpropTF(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1.x computes it (eps inside the sqrt, mean square starting at 1).

    Per parameter ``w`` with gradient ``g`` (``g += weight_decay * w`` first)::

        ms  = rho * ms + (1 - rho) * g**2          # ms starts at 1
        mom = momentum * mom + lr * g / sqrt(ms + eps)
        w   = w - mom

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        rho: decay of the mean square (TF's ``decay``, 0.9 in the paper).
        momentum: momentum (0.9 in the paper).
        eps: added to the mean square inside the square root (1e-3 in the paper).
        weight_decay: L2 coefficient added to the gradient. TF's recipe adds
            ``weight_decay * sum(tf.nn.l2_loss(w))`` to the loss; ``l2_loss`` is ``0.5 * ||w||^2``, whose
            gradient is ``w``, so TF's 1e-5 is exactly ``g += 1e-5 * w`` here (no factor 2).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 0.016,
        rho: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps <= 0 or not 0 <= rho < 1 or not 0 <= momentum < 1 or weight_decay < 0:
            raise ValueError(
                f"bad RMSpropTF arguments: lr={lr} (>= 0), rho={rho} ([0, 1)), momentum={momentum} ([0, 1)), "
                f"eps={eps} (> 0), weight_decay={weight_decay} (>= 0)"
            )
        super().__init__(params, dict(lr=lr, rho=rho, momentum=momentum, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        """Performs one optimization step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, momentum, eps, wd = (group[k] for k in ("lr", "rho", "momentum", "eps", "weight_decay"))
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("RMSpropTF does not support sparse gradients")
                g = p.grad.add(p, alpha=wd) if wd else p.grad
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ms, buf = state["square_avg"], state["momentum_buffer"]
                ms.mul_(rho).addcmul_(g, g, value=1 - rho)
                update = g / ms.add(eps).sqrt_()
                if momentum > 0:
                    buf.mul_(momentum).add_(update, alpha=lr)
                    p.sub_(buf)
                else:
                    p.sub_(update, alpha=lr)
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: conv/linear weights with ``weight_decay``, BN parameters and biases without.

    TF's recipe decays every non-BN variable (SE and classifier biases too); excluding all 1-D parameters
    is timm's convention and differs from TF only in a handful of bias vectors at 1e-5.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    rms_decay: float = 0.9,
    eps: float = 1e-3,
) -> torch.optim.Optimizer:
    """Builds ``rmsproptf``, ``sgd`` (Nesterov) or ``adamw`` over :func:`param_groups` of ``model``."""
    groups = param_groups(model, weight_decay)
    if name == "rmsproptf":
        return RMSpropTF(groups, lr=lr, rho=rms_decay, momentum=momentum, eps=eps)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, rms_decay), eps=eps)
    raise ValueError(f"unknown optimizer {name!r}; use rmsproptf, sgd or adamw")

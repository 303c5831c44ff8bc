"""One training epoch: the thin engine of ConvNeXt's ``engine.train_one_epoch``, without the bookkeeping.

Mixed precision through ``torch.autocast`` (a ``GradScaler`` only for fp16), channels_last inputs,
gradient accumulation (DDP's ``no_sync`` on the micro-batches that do not step), mixup/cutmix from
``torchvision.transforms.v2``, optional grad clipping, the EMA and the per-step lr schedule. A
non-finite loss stops every process at once with :class:`NonFiniteLossError` before the weights change.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from mixnet.errors import MixnetError
from mixnet.runtime import autocast
from mixnet.train.distributed import DistInfo, all_reduce_mean, all_true


class NonFiniteLossError(MixnetError, RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class StepContext:
    """What every step needs besides the model and the batch.

    Attributes:
        optimizer: the optimizer.
        scheduler: per-step lr scheduler (stepped after each optimizer step).
        loss_fn: criterion taking (logits, targets); targets may be soft (mixup).
        dist: process placement.
        ema: EMA model updated after each optimizer step, or None.
        scaler: fp16 grad scaler, or None.
        amp_dtype: autocast dtype, or None.
        accum_steps: micro-batches per optimizer step.
        channels_last: feed NHWC tensors.
        grad_clip: max gradient norm (0: off).
        mix_fn: batch transform (images, labels) -> (images, soft labels), or None.
        raw_model: the model without DDP/compile wrappers (what the EMA averages); default the model.
    """

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    dist: DistInfo
    ema: torch.optim.swa_utils.AveragedModel | None = None
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None
    accum_steps: int = 1
    channels_last: bool = False
    grad_clip: float = 0.0
    mix_fn: Callable | None = None
    raw_model: nn.Module | None = None


def create_mix_fn(mixup: float, cutmix: float, num_classes: int) -> Callable | None:
    """torchvision's MixUp / CutMix (one of them at random per batch when both are on), or None."""
    from torchvision.transforms import v2

    ops = []
    if mixup > 0:
        ops.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        ops.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)


def _remedies(ctx: StepContext, *extra: str) -> str:
    """What to try after a non-finite loss or gradient; ``--amp none`` only when mixed precision is on."""
    options = ["a lower --lr", *extra]
    if ctx.amp_dtype is not None:
        options.append("--amp none")
    return ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    ctx: StepContext,
    *,
    epoch: int,
    steps: int,
    progress: bool = True,
) -> dict[str, float]:
    """Trains ``model`` for ``steps`` optimizer steps of ``ctx.accum_steps`` micro-batches from ``loader``.

    Returns:
        ``{"train_loss" (mean over processes), "lr" (at the end), "images_per_s" (all processes), "steps"}``.

    Raises:
        NonFiniteLossError: a NaN/inf loss or gradient norm on any process; the weights are left as after the
            last good step.
    """
    model.train()
    dev = ctx.dist.device
    fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}", unit="step", disable=not (progress and ctx.dist.is_main))
    it = iter(loader)
    loss_sum, images, start = 0.0, 0, time.perf_counter()
    ctx.optimizer.zero_grad(set_to_none=True)
    try:
        for step in range(steps):
            step_loss = 0.0
            for micro in range(ctx.accum_steps):
                x, y = next(it)
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                if ctx.mix_fn is not None:
                    x, y = ctx.mix_fn(x, y)
                x = x.contiguous(memory_format=fmt)
                # DDP all-reduces gradients on every backward unless told not to; skip it until the last micro-batch.
                last = micro == ctx.accum_steps - 1
                sync = contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
                with sync:
                    with autocast(dev, ctx.amp_dtype):
                        loss = ctx.loss_fn(model(x), y)
                    loss_value = loss.item()
                    if not all_true(math.isfinite(loss_value), ctx.dist):
                        raise NonFiniteLossError(
                            f"non-finite training loss ({loss_value} on rank {ctx.dist.rank}) at epoch {epoch + 1}, "
                            f"step {step + 1}: training stopped before the weights changed. Try "
                            f"{_remedies(ctx, '--grad-clip')}"
                        )
                    loss = loss / ctx.accum_steps
                    (ctx.scaler.scale(loss) if ctx.scaler else loss).backward()
                step_loss += loss_value / ctx.accum_steps
                images += len(x)
            if ctx.scaler:
                ctx.scaler.unscale_(ctx.optimizer)
            # The norm is also the cheapest check that no gradient overflowed: a finite loss can still
            # have inf/NaN gradients (e.g. low-precision backward), and one such step ruins the weights.
            # With fp16 the scaler skips such steps itself.
            if ctx.grad_clip > 0:
                norm = nn.utils.clip_grad_norm_(model.parameters(), ctx.grad_clip)
            else:  # the norm only: scaling every gradient by 1 would be a wasted pass over them
                norm = nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            if not ctx.scaler and not all_true(bool(torch.isfinite(norm)), ctx.dist):
                raise NonFiniteLossError(
                    f"non-finite gradient norm ({norm.item()} on rank {ctx.dist.rank}) at epoch {epoch + 1}, "
                    f"step {step + 1} (loss {step_loss:.4f}): training stopped before the weights changed. Try "
                    f"{_remedies(ctx)}"
                )
            if ctx.scaler:
                ctx.scaler.step(ctx.optimizer)
                ctx.scaler.update()
            else:
                ctx.optimizer.step()
            ctx.optimizer.zero_grad(set_to_none=True)
            ctx.scheduler.step()
            if ctx.ema is not None:
                ctx.ema.update_parameters(ctx.raw_model if ctx.raw_model is not None else model)
            loss_sum += step_loss
            lr = ctx.optimizer.param_groups[0]["lr"]
            bar.update()
            bar.set_postfix(
                loss=f"{step_loss:.4f}",
                lr=f"{lr:.3g}",
                img_s=f"{images * ctx.dist.world_size / (time.perf_counter() - start):.0f}",
            )
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    return {
        "train_loss": all_reduce_mean(loss_sum / max(1, steps), ctx.dist),
        "lr": ctx.optimizer.param_groups[0]["lr"],
        "images_per_s": images * ctx.dist.world_size / seconds,
        "train_seconds": seconds,
        "steps": steps,
    }

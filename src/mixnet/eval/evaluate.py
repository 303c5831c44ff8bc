"""Evaluation: top-1/top-5 accuracy, cross-entropy and throughput of a classifier over a DataLoader.

A thin engine in the style of ConvNeXt's ``engine.evaluate`` and timm's ``validate.py``: accuracies in
percent, the loss as plain (unsmoothed) mean cross-entropy, optional autocast and channels_last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from mixnet.runtime import autocast, resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    device: str | torch.device = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = True,
    sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float | int]:
    """Top-1, top-k (k = min(5, classes)) accuracy in percent, mean cross-entropy and images/s.

    Args:
        model: a classifier returning logits (N, classes); moved to ``device``, put in eval mode for the run
            and restored to its mode after.
            With ``channels_last`` it is converted to that memory format in place.
        loader: yields (images, int labels) batches.
        device: where to run.
        amp_dtype: autocast dtype (``torch.bfloat16``/``torch.float16``), or None for full precision.
        channels_last: run in NHWC memory format (often faster on CPUs and tensor cores).
        progress: show a tqdm bar.
        sum_across: for a loader that holds one shard of the data per process: returns the element-wise
            sum of a float64 tensor over the processes (e.g. an ``all_reduce``), so every process gets the
            metrics of the whole set. Every process must call ``evaluate`` then, even with an empty shard.

    Returns:
        ``{"top1", "top5" (or "top<k>" when fewer than 5 classes), "k", "loss", "n", "images_per_s",
        "model_images_per_s", "seconds"}``. ``images_per_s`` counts the whole loop (data loading
        included); ``model_images_per_s`` only host-to-device copy and forward. With ``sum_across``,
        ``n`` and the metrics are the whole set's; the speeds stay this process's.

    Raises:
        ValueError: no images at all.
    """
    device = resolve_device(device)
    was_training = model.training
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # A parameter that moves or changes layout here gets a new tensor; made in inference mode it could never
    # be trained again (a 1x1 depthwise weight changes strides under channels_last, for one).
    with torch.inference_mode(False):
        model.eval().to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
    n, correct1, correctk, loss_sum, model_s, k = 0, 0, 0, 0.0, 0.0, None
    bar = tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False)
    start = time.perf_counter()
    try:
        for images, targets in bar:
            _sync(device)
            t0 = time.perf_counter()
            images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            targets = targets.to(device, non_blocking=True)
            with autocast(device, amp_dtype):
                logits = model(images)
            logits = logits.float()  # loss and softmax in fp32 even under autocast
            _sync(device)
            model_s += time.perf_counter() - t0
            if k is None:
                k = min(5, logits.shape[1])
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
            top = logits.topk(k, dim=1).indices
            hits = top == targets[:, None]
            correct1 += hits[:, 0].sum().item()
            correctk += hits.any(dim=1).sum().item()
            n += len(targets)
            bar.set_postfix(top1=f"{100 * correct1 / n:.2f}")
    finally:
        bar.close()
        model.train(was_training)
    seconds = time.perf_counter() - start
    local_n = n
    if sum_across is not None:
        # Counts and sums, not ratios, so the result equals one process evaluating the whole set. k rides
        # along as a sum over the shards that saw images (an empty shard does not know the class count).
        t = torch.tensor([n, correct1, correctk, loss_sum, k or 0, int(n > 0)], dtype=torch.float64)
        n, correct1, correctk, loss_sum, k_sum, shards = sum_across(t).tolist()
        n, k = int(n), int(k_sum) // max(1, int(shards))
    if n == 0:
        raise ValueError("the loader yielded no images to evaluate")
    return {
        "top1": 100.0 * correct1 / n,
        f"top{k}": 100.0 * correctk / n,
        "k": k,
        "loss": loss_sum / n,
        "n": n,
        "images_per_s": local_n / seconds,
        "model_images_per_s": local_n / model_s if model_s > 0 else float("inf"),
        "seconds": seconds,
    }

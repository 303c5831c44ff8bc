"""Inference latency of every variant of a study, measured interleaved on this machine.

Each variant is built with random weights (latency does not depend on them), rewritten for inference
(:func:`mixnet.optimize_for_inference`, the deployment path) and timed with the bench harness's
interleaved medians, so all variants share the machine's state of the moment and their ratios hold.
"""

from __future__ import annotations

import contextlib

import torch

from mixnet.deploy.optimize import optimize_for_inference
from mixnet.factory import create_model
from mixnet.study.spec import Study
from mixnet.timing import interleaved_medians


def measure_latency(study: Study, num_classes: int, progress: bool = False) -> dict[str, float]:
    """Median milliseconds per forward pass of every (model, kernels) of ``study``, at its image size.

    Raises:
        ValueError: ``cuda`` asked for on a machine without CUDA.
    """
    lat = study.latency
    if lat.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("latency device cuda asked for, but CUDA is not available")
    device = torch.device(lat.device)
    x = torch.randn(lat.batch_size, 3, study.img_size, study.img_size, device=device)
    contenders = {}
    for variant in study.architectures():
        model = create_model(
            variant.model, num_classes=num_classes, kernels=variant.kernels, **study.arch_overrides()
        ).to(device)
        fast = optimize_for_inference(model, img_size=study.img_size, channels_last=device.type == "cpu")

        def run(fast=fast) -> torch.Tensor:
            with torch.inference_mode():
                out = fast(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out

        contenders[variant.key] = run
    threads = torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        torch.set_num_threads(lat.threads)
        stack.callback(torch.set_num_threads, threads)
        medians = interleaved_medians(contenders, rounds=lat.rounds, iters=3, pause_s=0.02, progress=progress)
    return {k: round(v * 1e3, 4) for k, v in medians.items()}

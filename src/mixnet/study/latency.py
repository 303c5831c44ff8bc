"""Inference latency of every variant of a study, measured interleaved on this machine.

Each variant is built with random weights (latency does not depend on them), rewritten for inference
(:func:`mixnet.optimize_for_inference`, the deployment path) and timed as whole nets by
:func:`mixnet.measure.timing.net_latencies_ms`, interleaved, so all variants share the machine's state of
the moment and their ratios hold, with the harness settings the search's latency uses.
"""

from __future__ import annotations

import torch

from mixnet.deploy.optimize import optimize_for_inference
from mixnet.factory import create_model
from mixnet.measure.runners import torch_runner
from mixnet.measure.threads import threads
from mixnet.measure.timing import net_latencies_ms
from mixnet.study.spec import Study


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
            study.model_source(variant),
            num_classes=num_classes,
            kernels=variant.kernels,
            **study.arch_overrides(variant),
        ).to(device)
        fast = optimize_for_inference(model, img_size=study.img_size, channels_last=device.type == "cpu")
        contenders[variant.key] = torch_runner(fast, x)
    with threads(lat.threads):
        medians = net_latencies_ms(contenders, rounds=lat.rounds, progress=progress)
    return {k: round(v, 4) for k, v in medians.items()}

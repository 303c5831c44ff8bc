"""Whole-net cost: nets of any configuration timed end to end, in this process or in a fresh one.

The search's predictor is calibrated and checked on whole nets timed in a new Python process, never in
the process that timed the blocks: that process holds hundreds of built blocks, warmed caches and
allocator state that whole nets timed there share, and a check run there hides the bias a search in
another process meets. The fresh process runs this module:

    python -m mixnet.search.netcost REQUEST.json RESULT.json

REQUEST holds ``configs`` (MixNetConfig dicts) and the keyword arguments of :func:`measure_configs`;
RESULT gets ``{"ms": [...]}`` in the same order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mixnet.atomic import write_json
from mixnet.measure.runners import ort_runner, torch_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import net_latencies_ms
from mixnet.models.complexity import config_complexity
from mixnet.models.configs import MixNetConfig
from mixnet.models.mixnet import MixNet

RUNTIMES = ("eager", "optimized", "ort", "macs")
UNITS = {"eager": "ms", "optimized": "ms", "ort": "ms", "macs": "MMAC"}


def check_runtime(runtime: str) -> None:
    """Raises ValueError for a runtime this module cannot measure (or count)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown latency runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def trunk_blocks(
    config, runtime: str, img_size: int, num_classes: int, channels_last: bool
) -> tuple[nn.Module, list[nn.Module]]:
    """A net of ``config`` as the runtime runs it, and its blocks in order.

    ONNX blocks come from the rewrite :func:`mixnet.deploy.export.to_onnx` exports
    (:func:`mixnet.deploy.optimize.onnx_rewrite`), so they are the layers a deployed ONNX file holds.
    """
    net = MixNet(config, num_classes=num_classes).eval()
    if runtime in ("optimized", "ort"):
        from mixnet.deploy.optimize import onnx_rewrite, optimize_for_inference

        if runtime == "ort":
            wrapper = onnx_rewrite(net, img_size=img_size)
        else:
            wrapper = optimize_for_inference(net, img_size=img_size, channels_last=channels_last)
        return wrapper, [b for stage in wrapper.model.stages for b in stage]
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, [b for stage in net.stages for b in stage]


def measure_configs(
    configs: Sequence,
    *,
    runtime: str = "eager",
    img_size: int,
    batch: int,
    threads: int,
    num_classes: int = 10,
    channels_last: bool = True,
    rounds: int = 9,
) -> list[float]:
    """End-to-end cost of whole nets (:class:`mixnet.MixNetConfig` s) in the runtime's unit.

    Measured runtimes: medians (ms) with the nets interleaved by :func:`mixnet.measure.timing.net_latencies_ms`,
    the whole-net setting the study's latency uses too; ``macs``: counted MMACs.
    """
    check_runtime(runtime)
    if runtime == "macs":
        return [config_complexity(c, img_size, num_classes=num_classes).macs / 1e6 for c in configs]
    x = torch.randn(batch, 3, img_size, img_size)
    with using_threads(threads), tempfile.TemporaryDirectory() as tmp:
        contenders = {}
        for i, config in enumerate(configs):
            net, _ = trunk_blocks(
                config, "eager" if runtime == "ort" else runtime, img_size, num_classes, channels_last
            )
            if runtime == "ort":
                from mixnet.deploy.export import to_onnx

                path = Path(tmp) / f"{i}.onnx"
                to_onnx(net, path, img_size=img_size, optimize=True, check=False, threads=threads)
                contenders[str(i)] = ort_runner(path, x, threads)
            else:
                xi = x.contiguous(memory_format=torch.channels_last) if channels_last and runtime == "eager" else x
                contenders[str(i)] = torch_runner(net, xi)
        medians = net_latencies_ms(contenders, rounds=rounds)
    return [medians[str(i)] for i in range(len(configs))]


def measure_configs_fresh(configs: Sequence[MixNetConfig], **settings) -> list[float]:
    """:func:`measure_configs` of ``configs``, run in a new Python process.

    Raises:
        RuntimeError: the process failed (its error output is quoted).
    """
    with tempfile.TemporaryDirectory() as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({"configs": [c.to_dict() for c in configs], "settings": settings}))
        proc = subprocess.run(
            [sys.executable, "-m", "mixnet.search.netcost", str(request), str(result)], capture_output=True, text=True
        )
        if proc.returncode != 0 or not result.exists():
            raise RuntimeError(f"latency measurement in a fresh process failed: {proc.stderr.strip()[-800:]}")
        return json.loads(result.read_text())["ms"]


def main(argv: list[str] | None = None) -> int:
    request, result = (argv if argv is not None else sys.argv[1:])[:2]
    spec = json.loads(Path(request).read_text())
    configs = [MixNetConfig.from_dict(c) for c in spec["configs"]]
    write_json(result, {"ms": measure_configs(configs, **spec["settings"])})
    return 0


if __name__ == "__main__":
    sys.exit(main())

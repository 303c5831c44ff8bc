"""Exported files timed beside the PyTorch model they came from (``mixnet bench --model FILE``).

Each file runs in its own runtime (``.onnx`` in ONNX Runtime, fp32 or int8; an OpenVINO ``.xml`` in
OpenVINO), interleaved with the PyTorch model when its weights are given (eager and the inference
rewrite), on one input; fp32 files must agree with the PyTorch model (or, without it, with the first
fp32 file) before anything is timed, by the rule their export was checked by
(:mod:`mixnet.measure.agreement`: 1e-3 of the output's scale); int8 files' difference is reported.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from mixnet.bench.suite import Row, measured_rows
from mixnet.measure.agreement import check_agreement
from mixnet.measure.macs import count_macs
from mixnet.measure.runners import OPENVINO_SUFFIXES, file_runner, input_shape, torch_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians

EAGER, OPTIMIZED = "PyTorch eager", "PyTorch optimized"
# Operators only a quantized graph holds (ONNX Runtime's QDQ and QOperator forms, OpenVINO's).
_QUANTIZED_OPS = ("QuantizeLinear", "DynamicQuantizeLinear", "QLinear", "ConvInteger", "MatMulInteger", "FakeQuantize")


def is_quantized(path: str | Path) -> bool:
    """Whether an exported file computes in int8 (its graph holds quantization operators)."""
    if Path(path).suffix.lower() in OPENVINO_SUFFIXES:
        import openvino as ov

        types = {op.get_type_name() for op in ov.Core().read_model(str(path)).get_ordered_ops()}
    else:
        import onnx

        types = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    return any(t.startswith(_QUANTIZED_OPS) for t in types)


def file_label(path: str | Path) -> str:
    """``name.onnx (ORT)``, ``name.int8.onnx (ORT int8)``, ``name.xml (OpenVINO)``: the file and its runtime."""
    path = Path(path)
    runtime = "OpenVINO" if path.suffix.lower() in OPENVINO_SUFFIXES else "ORT"
    return f"{path.name} ({runtime}{' int8' if is_quantized(path) else ''})"


def file_img_size(files: Sequence[str | Path], default: int) -> int:
    """The resolution the files were exported at (their static input size), else ``default``.

    Raises:
        ValueError: a missing file, or files exported at different sizes.
    """
    sizes = set()
    for f in files:
        if not Path(f).is_file():
            raise ValueError(f"exported model file not found: {f}")
        h = input_shape(f)[-1]
        if h is not None:
            sizes.add(h)
    if len(sizes) > 1:
        raise ValueError(f"the exported files take different image sizes ({sorted(sizes)}); time them apart")
    return sizes.pop() if sizes else default


def file_contenders(
    files: Sequence[str | Path], model: nn.Module | None, x: torch.Tensor, threads: int
) -> dict[str, Callable[[], torch.Tensor]]:
    """label -> runner on ``x``: the PyTorch model (eager and rewritten for inference) when given, each file."""
    out: dict[str, Callable[[], torch.Tensor]] = {}
    if model is not None:
        from mixnet.deploy.optimize import optimize_for_inference

        out[EAGER] = torch_runner(model, x)
        out[OPTIMIZED] = torch_runner(optimize_for_inference(model, img_size=x.shape[-1]), x)
    for f in files:
        label = file_label(f)
        if label in out:
            raise ValueError(f"{f} is given twice")
        out[label] = file_runner(f, x, threads)
    return out


def bench_files(
    files: Sequence[str | Path],
    batches: Sequence[int] = (1, 8),
    *,
    model: nn.Module | None = None,
    name: str | None = None,
    img_size: int = 224,
    threads: int = 2,
    rounds: int = 9,
    iters: int = 2,
    progress: bool = True,
) -> list[Row]:
    """Images/s of each exported file (and of ``model``, its PyTorch source, when given), interleaved per batch.

    Args:
        files: exported files, all of one network at one resolution.
        batches: batch sizes, each timed in its own interleaved run.
        model: the PyTorch model the files were exported from (eval mode), or ``None``.
        name: the network's name in the rows (default: the first file's stem).
        img_size: the resolution when the files declare none.
        threads: threads of every runtime.
        rounds, iters: interleaved rounds and calls per round.
        progress: print a line per batch size and a bar over rounds.

    Raises:
        ValueError: no files, a missing file, or files of different resolutions.
        RuntimeError: an fp32 contender disagrees with the reference.
    """
    if not files:
        raise ValueError("no exported files to time")
    img_size = file_img_size(files, img_size)
    name = name or Path(files[0]).name.split(".")[0]
    in_chans = 3 if model is None else getattr(model, "in_chans", 3)
    macs = count_macs(model, img_size, in_chans) if model is not None else math.nan
    rows: list[Row] = []
    with using_threads(threads):
        for batch in batches:
            if progress:
                print(f"bench: {name} files, batch {batch} ...", flush=True)
            x = torch.randn(batch, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(1))
            contenders = file_contenders(files, model, x, threads)
            base = (
                EAGER if model is not None else next((k for k in contenders if "int8" not in k), next(iter(contenders)))
            )
            diffs = check_agreement(contenders, base)
            medians = interleaved_medians(contenders, rounds=rounds, iters=iters, pause_s=0.05, progress=progress)
            rows += measured_rows("exported", name, batch, img_size, threads, macs, medians, base, diffs)
    return rows

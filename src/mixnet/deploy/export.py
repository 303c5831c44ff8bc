"""Export a MixNet to ONNX, TorchScript and torch.export (.pt2), each checked against the eager model.

ONNX uses PyTorch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, which runs onnxscript's
optimizer) with a dynamic batch axis; the file is then run in ONNX Runtime on a batch of another size
than the one exported with, and the export fails if any output differs from eager PyTorch by more
than ``tolerance``. By default the exported network is :func:`mixnet.deploy.optimize.optimize_for_inference`'s
rewrite at the export resolution: BN folded, MixConvs fused, and TF "SAME" padding static, so the
graph of a ``tf_`` model holds no Shape -> Pad subgraph (the usual trouble with SAME in ONNX/TensorRT).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from mixnet.deploy.optimize import onnx_rewrite, optimize_for_inference
from mixnet.errors import MixnetError
from mixnet.models.mixnet import MixNetTrunk

Format = Literal["onnx", "torchscript", "torch_export"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "torch_export")
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts.pt", "torch_export": ".pt2"}


class ExportCheckError(MixnetError, RuntimeError):
    """An exported model whose outputs differ from the eager model's by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """One exported file and how closely it matched eager PyTorch.

    Attributes:
        format: ``onnx``, ``torchscript`` or ``torch_export``.
        path: the written file.
        max_abs_diff: largest absolute output difference to the eager model on the check batch.
        check_batch: batch size of that check (differs from the export batch, to test the dynamic axis).
    """

    format: str
    path: Path
    max_abs_diff: float
    check_batch: int


def ort_session(path: str | Path, threads: int | None = None, *, optimization: bool = True):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and thread spinning off.

    Spinning is off because a spinning pool keeps the cores busy after ``run()`` returns, which on a
    shared or small machine slows whatever runs next (two identical sessions measured 0.63x apart with it on).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimization:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _example(model: nn.Module, batch: int, img_size: int) -> torch.Tensor:
    net = getattr(model, "model", model)
    in_chans = net.stem.conv.in_channels if hasattr(net, "stem") else 3
    return torch.randn(batch, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(batch))


def _max_diff(out: object, ref: object) -> float:
    outs = out if isinstance(out, (list, tuple)) else [out]
    refs = ref if isinstance(ref, (list, tuple)) else [ref]
    if len(outs) != len(refs):
        raise ExportCheckError(f"exported model returns {len(outs)} outputs, eager {len(refs)}")
    diffs = []
    for o, r in zip(outs, refs, strict=True):
        o = torch.as_tensor(np.asarray(o)) if not isinstance(o, torch.Tensor) else o
        if tuple(o.shape) != tuple(r.shape):
            raise ExportCheckError(f"exported output shape {tuple(o.shape)} differs from eager {tuple(r.shape)}")
        diffs.append((o.float() - r.float()).abs().max().item())
    return max(diffs)


@contextlib.contextmanager
def _toolchain_notices_hidden() -> Iterator[None]:
    """Hides the exporters' notices about their own APIs (deprecations, tracer caveats), nothing else.

    They speak of torch.jit and the ONNX exporter, not of the user's model, and every export is checked
    numerically against eager PyTorch before it is kept; any other warning still shows.
    """
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


def _partial(path: Path) -> Path:
    """Where a file is written before its check passes (same suffix: torch.export.load insists on .pt2)."""
    return path.with_name(f"{path.name.split('.')[0]}.partial{''.join(path.suffixes)}")


def _check(fmt: str, diff: float, tolerance: float, path: Path) -> None:
    if not diff <= tolerance:  # also catches NaN
        raise ExportCheckError(
            f"{fmt} export {str(path)!r} differs from the eager model by {diff:.3g} (max abs) > {tolerance:g}"
        )


def _check_and_keep(
    fmt: str,
    model: nn.Module,
    net: nn.Module,
    run: Callable[[torch.Tensor], object],
    tmp: Path,
    path: Path,
    check_batch: int,
    img_size: int,
    check: bool,
    tolerance: float,
) -> ExportResult:
    """Runs the written file (``run``) on a batch of ``check_batch``, compares it with the original model,
    and only then moves it from ``tmp`` to ``path``: a file that failed its check is deleted, never kept."""
    diff = float("nan")
    if check:
        x = _example(net, check_batch, img_size)
        diff = _max_diff(run(x), _reference(model, x))
        try:
            _check(fmt, diff, tolerance, path)
        except ExportCheckError:
            tmp.unlink(missing_ok=True)
            raise
    tmp.replace(path)
    return ExportResult(fmt, path, diff, check_batch)


def prepare(
    model: nn.Module, *, img_size: int, optimize: bool, channels_last: bool = False, onnx: bool = False
) -> nn.Module:
    """The module to export: ``optimize_for_inference`` at ``img_size`` (:func:`onnx_rewrite` for ONNX),
    or an eval-mode copy.

    A model kept in channels_last (as for training) is exported from a contiguous copy unless
    ``channels_last`` is asked for: ``torch.export`` fails on some nets whose weights mix the two layouts.
    """
    if optimize:
        if not isinstance(model, MixNetTrunk):
            raise TypeError(f"optimize=True needs a mixnet MixNet or MixNetFeatures, got {type(model).__name__}")
        if onnx:
            net = onnx_rewrite(model, img_size=img_size)
        else:
            net = optimize_for_inference(model, img_size=img_size, channels_last=channels_last)
    else:
        net = copy.deepcopy(model).eval()
    return net if channels_last else net.to(memory_format=torch.contiguous_format)


def _reference(model: nn.Module, x: torch.Tensor) -> object:
    """The original model's eval-mode output: every check compares against it, not the rewrite."""
    was_training = model.training
    try:
        with torch.inference_mode():
            return model.eval()(x)
    finally:
        model.train(was_training)


def to_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    opset: int | None = None,
    check: bool = True,
    tolerance: float = 1e-4,
    threads: int | None = None,
) -> ExportResult:
    """Exports ``model`` to ONNX with a dynamic batch axis and checks it in ONNX Runtime.

    Args:
        model: a MixNet (or any module when ``optimize=False``).
        path: output ``.onnx`` file (parent folders are created).
        img_size: input resolution (fixed in the graph; SAME padding is static for it).
        batch: batch size of the example input used for tracing.
        optimize: export :func:`onnx_rewrite` (BN folded, every MixConv fused).
        opset: ONNX opset (default: the exporter's).
        check: run the file in ONNX Runtime on a batch of size ``batch + 1`` and compare to eager.
        tolerance: largest allowed max-abs difference in that check.
        threads: ONNX Runtime threads for the check.

    Raises:
        ExportCheckError: ONNX Runtime's outputs differ by more than ``tolerance``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare(model, img_size=img_size, optimize=optimize, onnx=True)
    example = _example(net, batch, img_size)
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    kwargs = {"opset_version": opset} if opset else {}
    tmp = _partial(path)
    with _toolchain_notices_hidden():
        torch.onnx.export(
            net,
            (example,),
            str(tmp),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch_dim},),
            external_data=False,
            verbose=False,
            **kwargs,
        )

    def run(x: torch.Tensor) -> object:
        return ort_session(tmp, threads).run(None, {"input": x.numpy()})

    return _check_and_keep("onnx", model, net, run, tmp, path, batch + 1, img_size, check, tolerance)


def to_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    check: bool = True,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Traces ``model`` to TorchScript, freezes it and checks it against eager on another batch size.

    Tracing (not scripting) because the rewritten model's control flow depends only on the
    architecture; ``torch.jit.freeze`` inlines the weights. The batch size stays dynamic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare(model, img_size=img_size, optimize=optimize, channels_last=True)
    example = _example(net, batch, img_size)
    with torch.inference_mode(False), torch.no_grad(), _toolchain_notices_hidden():
        traced = torch.jit.freeze(torch.jit.trace(net, example, check_trace=False))
    tmp = _partial(path)
    with _toolchain_notices_hidden():
        torch.jit.save(traced, str(tmp))

    def run(x: torch.Tensor) -> object:
        with torch.no_grad(), _toolchain_notices_hidden():
            return torch.jit.load(str(tmp))(x)

    return _check_and_keep("torchscript", model, net, run, tmp, path, batch + 1, img_size, check, tolerance)


def to_torch_export(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 2,
    optimize: bool = True,
    check: bool = True,
    tolerance: float = 1e-4,
) -> ExportResult:
    """Exports with ``torch.export.export`` (dynamic batch), saves a .pt2 and checks the reloaded program.

    ``batch`` must be at least 2: torch.export specialises a size-1 dimension to the constant 1.
    """
    if batch < 2:
        raise ValueError("torch.export needs an example batch of at least 2 for a dynamic batch axis")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare(model, img_size=img_size, optimize=optimize)
    example = _example(net, batch, img_size)
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: batch_dim},))
    tmp = _partial(path)
    torch.export.save(program, str(tmp))

    def run(x: torch.Tensor) -> object:
        with torch.no_grad():
            return torch.export.load(str(tmp)).module()(x)

    return _check_and_keep("torch_export", model, net, run, tmp, path, batch + 1, img_size, check, tolerance)


def export(
    model: nn.Module,
    out_dir: str | Path,
    formats: list[str] | tuple[str, ...] = FORMATS,
    *,
    name: str = "model",
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    tolerance: float = 1e-4,
) -> list[ExportResult]:
    """Exports ``model`` to each of ``formats`` in ``out_dir`` as ``<name><suffix>``, each checked.

    Raises:
        ValueError: an unknown format.
        ExportCheckError: an export whose outputs differ from eager by more than ``tolerance``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    out_dir = Path(out_dir)
    results = []
    common = {"img_size": img_size, "optimize": optimize, "tolerance": tolerance}
    for fmt in formats:
        path = out_dir / f"{name}{SUFFIX[fmt]}"
        if fmt == "onnx":
            results.append(to_onnx(model, path, batch=batch, **common))
        elif fmt == "torchscript":
            results.append(to_torchscript(model, path, batch=batch, **common))
        else:
            results.append(to_torch_export(model, path, batch=max(batch, 2), **common))
    return results

"""Export a MixNet to ONNX, TorchScript, torch.export (.pt2) and OpenVINO IR, each checked against the eager model.

ONNX uses PyTorch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, which runs onnxscript's
optimizer) with a dynamic batch axis; the file is then run in ONNX Runtime on a batch of another size
than the one exported with, and the export fails if any output differs from eager PyTorch by more
than ``tolerance`` times the output's scale (its largest absolute value, at least 1): the rule of
:mod:`mixnet.measure.agreement`, which ``mixnet bench`` checks its contenders by too. By default the
exported network is :func:`mixnet.deploy.optimize.optimize_for_inference`'s rewrite at the export
resolution: BN folded, MixConvs fused, and TF "SAME" padding static, so the graph of a ``tf_`` model holds
no Shape -> Pad subgraph (the usual trouble with SAME in ONNX/TensorRT).

OpenVINO's IR (.xml + .bin) is converted by OpenVINO's own ``openvino.convert_model`` from that checked
ONNX graph, so both deployment files hold the same network, and is then checked in OpenVINO the same way.

The ONNX and OpenVINO files carry the model's :class:`mixnet.io.spec.ModelSpec` (architecture, class
names, eval preprocessing at the exported resolution) as JSON under the key ``mixnet.spec``: in the ONNX
file's ``metadata_props`` and in the IR's ``rt_info``, as ``.safetensors`` model files carry it in their
metadata. ``mixnet eval`` and ``mixnet predict`` read it to run the file with its own preprocessing.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import importlib.util
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from mixnet.atomic import disk_full
from mixnet.deploy.optimize import onnx_rewrite, optimize_for_inference
from mixnet.errors import MixnetError, require
from mixnet.io.spec import SPEC_KEY, ModelSpec
from mixnet.measure.agreement import DEFAULT_TOLERANCE, agrees, allowed_difference, output_scale
from mixnet.measure.runners import OpenVinoRunner, ort_session
from mixnet.models.mixnet import MixNet, MixNetTrunk

Format = Literal["onnx", "torchscript", "torch_export", "openvino"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "torch_export", "openvino")
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts.pt", "torch_export": ".pt2", "openvino": ".xml"}
# The runtime package each format is checked in, when it is not torch.
_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}


class ExportCheckError(MixnetError, RuntimeError):
    """An exported model whose outputs differ from the eager model's by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """One exported file and how closely it matched eager PyTorch.

    Attributes:
        format: ``onnx``, ``torchscript``, ``torch_export`` or ``openvino``.
        path: the written file (for OpenVINO the .xml; its weights are the .bin beside it).
        max_abs_diff: largest absolute output difference to the eager model on the check batch.
        check_batch: batch size of that check (differs from the export batch, to test the dynamic axis).
        scale: the eager output's largest absolute value on that batch; the check allows
            ``tolerance * max(1, scale)``.
    """

    format: str
    path: Path
    max_abs_diff: float
    check_batch: int
    scale: float = float("nan")

    def as_dict(self) -> dict:
        """Plain-data form (the path as a string)."""
        return {
            "format": self.format,
            "path": str(self.path),
            "max_abs_diff": self.max_abs_diff,
            "scale": self.scale,
            "check_batch": self.check_batch,
        }


def available_formats() -> tuple[str, ...]:
    """The formats whose runtime is installed (what ``--format all`` writes): OpenVINO only with openvino."""
    return tuple(f for f in FORMATS if f not in _RUNTIME or importlib.util.find_spec(_RUNTIME[f]) is not None)


def _example(model: nn.Module, batch: int, img_size: int) -> torch.Tensor:
    net = getattr(model, "model", model)
    in_chans = net.stem.conv.in_channels if hasattr(net, "stem") else 3
    return torch.randn(batch, in_chans, img_size, img_size, generator=torch.Generator().manual_seed(batch))


def _flat(out: object) -> list[torch.Tensor]:
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [o if isinstance(o, torch.Tensor) else torch.as_tensor(np.asarray(o)) for o in outs]


def _max_diff(out: object, ref: object) -> float:
    outs, refs = _flat(out), _flat(ref)
    if len(outs) != len(refs):
        raise ExportCheckError(f"exported model returns {len(outs)} outputs, eager {len(refs)}")
    diffs = []
    for o, r in zip(outs, refs, strict=True):
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


@contextlib.contextmanager
def _writing(path: Path, *tmps: Path) -> Iterator[None]:
    """Removes the partial files ``tmps`` when writing them fails, and reports a full disk as
    ``OSError(ENOSPC)`` whatever the writer raised (torch's zip writer and onnx raise RuntimeError or their own
    errors), so the command line prints one line."""
    try:
        yield
    except BaseException as e:  # a Ctrl-C during the write leaves no partial file either
        full = isinstance(e, Exception) and disk_full(e, path.parent)  # before the partial files go
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, f"writing {path} failed (out of disk space); nothing was kept") from e
        raise


def _partial(path: Path) -> Path:
    """Where a file is written before its check passes (same suffix: torch.export.load insists on .pt2)."""
    return path.with_name(f"{path.name.split('.')[0]}.partial{''.join(path.suffixes)}")


def _check(fmt: str, diff: float, scale: float, tolerance: float, path: Path) -> None:
    allowed = allowed_difference(scale, tolerance)
    if not agrees(diff, scale, tolerance):  # NaN does not agree
        raise ExportCheckError(
            f"{fmt} export {str(path)!r} differs from the eager model by {diff:.3g} (max abs) > {allowed:.3g} "
            f"(tolerance {tolerance:g} x output scale {max(1.0, scale):.3g}); raise the tolerance "
            "(--tolerance) to keep it"
        )


def _check_and_keep(
    fmt: str,
    model: nn.Module,
    net: nn.Module,
    run: Callable[[torch.Tensor], object],
    moves: list[tuple[Path, Path]],
    check_batch: int,
    img_size: int,
    check: bool,
    tolerance: float,
) -> ExportResult:
    """Runs the written file (``run``) on a batch of ``check_batch``, compares it with the original model,
    and only then moves each ``(tmp, final)`` of ``moves`` into place, the model file itself last: files
    that failed their check, or that the runtime could not load or run, are deleted, never kept."""
    diff = scale = float("nan")
    path = moves[-1][1]
    try:
        if check:
            x = _example(net, check_batch, img_size)
            ref = _reference(model, x)
            diff, scale = _max_diff(run(x), ref), output_scale(_flat(ref))
            _check(fmt, diff, scale, tolerance, path)
        for tmp, final in moves:
            tmp.replace(final)
    except BaseException:  # a kill (KeyboardInterrupt) too: no partial file is left behind
        for tmp, _ in moves:
            tmp.unlink(missing_ok=True)
        raise
    return ExportResult(fmt, path, diff, check_batch, scale)


def export_spec(model: nn.Module, spec: ModelSpec | None, img_size: int) -> ModelSpec | None:
    """The spec an exported file records: ``spec`` (else the model's own, for a MixNet classifier) with the
    preprocessing at the exported resolution, which the graph fixes."""
    if spec is None:
        if not isinstance(model, MixNet):
            return None
        spec = ModelSpec.from_model(model)
    return spec.replace(preprocess=spec.preprocess.replace(img_size=img_size))


def _write_onnx_spec(path: Path, spec: ModelSpec | None) -> None:
    """Records ``spec`` in an ONNX file's ``metadata_props`` under ``mixnet.spec`` (replacing any there)."""
    if spec is None:
        return
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != SPEC_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=SPEC_KEY, value=spec.to_json())
    onnx.save(proto, str(path))


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
    tolerance: float = DEFAULT_TOLERANCE,
    threads: int | None = None,
    spec: ModelSpec | None = None,
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
        tolerance: largest allowed max-abs difference in that check, relative to the output's scale
            (its largest absolute value, at least 1).
        threads: ONNX Runtime threads for the check.
        spec: what the file records under ``mixnet.spec`` (default: the model's own, for a MixNet classifier;
            the preprocessing's size is set to ``img_size``).

    Raises:
        ExportCheckError: ONNX Runtime's outputs differ by more than the tolerance allows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = prepare(model, img_size=img_size, optimize=optimize, onnx=True)
    example = _example(net, batch, img_size)
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    kwargs = {"opset_version": opset} if opset else {}
    tmp = _partial(path)
    with _writing(path, tmp), _toolchain_notices_hidden():
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
        _write_onnx_spec(tmp, export_spec(model, spec, img_size))

    def run(x: torch.Tensor) -> object:
        return ort_session(tmp, threads).run(None, {"input": x.numpy()})

    return _check_and_keep("onnx", model, net, run, [(tmp, path)], batch + 1, img_size, check, tolerance)


def to_torchscript(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
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
    with _writing(path, tmp), _toolchain_notices_hidden():
        torch.jit.save(traced, str(tmp))

    def run(x: torch.Tensor) -> object:
        with torch.no_grad(), _toolchain_notices_hidden():
            return torch.jit.load(str(tmp))(x)

    return _check_and_keep("torchscript", model, net, run, [(tmp, path)], batch + 1, img_size, check, tolerance)


def to_torch_export(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 2,
    optimize: bool = True,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
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
    with _writing(path, tmp):
        torch.export.save(program, str(tmp))

    def run(x: torch.Tensor) -> object:
        with torch.no_grad():
            return torch.export.load(str(tmp)).module()(x)

    return _check_and_keep("torch_export", model, net, run, [(tmp, path)], batch + 1, img_size, check, tolerance)


def to_openvino(
    model: nn.Module,
    path: str | Path,
    *,
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    threads: int | None = None,
    spec: ModelSpec | None = None,
) -> ExportResult:
    """Converts ``model`` to OpenVINO IR (``path`` .xml, weights in the .bin beside it) and checks it in OpenVINO.

    The network goes through :func:`to_onnx` first (the same rewrite, static SAME padding, dynamic batch)
    and OpenVINO's ``convert_model`` reads that file: one graph for both deployment formats, converted by
    OpenVINO's own frontend. Weights stay fp32 (``save_model``'s default would halve them to fp16).

    Args:
        model: a MixNet (or any module when ``optimize=False``).
        path: output ``.xml`` file (parent folders are created).
        img_size: input resolution (fixed in the graph).
        batch: batch size of the example input used for tracing.
        optimize: export :func:`onnx_rewrite`.
        check: run the IR in OpenVINO (CPU, fp32) on a batch of ``batch + 1`` and compare to eager.
        tolerance: largest allowed max-abs difference, relative to the output's scale (see :func:`to_onnx`).
        threads: OpenVINO threads for the check.
        spec: what the IR records under ``mixnet.spec`` in its ``rt_info`` (see :func:`to_onnx`).

    Raises:
        ValueError: a path that does not end in ``.xml``.
        MissingExtraError: openvino is not installed.
        ExportCheckError: OpenVINO's outputs differ by more than the tolerance allows.
    """
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR is an .xml file (with its .bin), got {str(path)!r}")
    ov = require("openvino", "export", "OpenVINO export")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(path)
    with _writing(path), tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-") as work:
        onnx_file = Path(work) / "model.onnx"
        to_onnx(model, onnx_file, img_size=img_size, batch=batch, optimize=optimize, check=False)
        ir = ov.convert_model(str(onnx_file))
    recorded = export_spec(model, spec, img_size)
    if recorded is not None:
        ir.set_rt_info(recorded.to_json(), SPEC_KEY)
    with _writing(path, tmp, tmp.with_suffix(".bin")):
        ov.save_model(ir, str(tmp), compress_to_fp16=False)

    def run(x: torch.Tensor) -> object:
        return OpenVinoRunner(tmp, threads).run(x.numpy())

    moves = [(tmp.with_suffix(".bin"), path.with_suffix(".bin")), (tmp, path)]
    return _check_and_keep("openvino", model, model, run, moves, batch + 1, img_size, check, tolerance)


def export(
    model: nn.Module,
    out_dir: str | Path,
    formats: list[str] | tuple[str, ...] = FORMATS,
    *,
    name: str = "model",
    img_size: int = 224,
    batch: int = 1,
    optimize: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
    spec: ModelSpec | None = None,
    threads: int | None = None,
) -> list[ExportResult]:
    """Exports ``model`` to each of ``formats`` in ``out_dir`` as ``<name><suffix>``, each checked.

    Args:
        model: a MixNet (or any module when ``optimize=False``).
        out_dir: the output folder.
        formats: any of :data:`FORMATS`.
        name: file name stem.
        img_size: input resolution.
        batch: example batch for tracing (torch.export uses at least 2).
        optimize: export the inference rewrite (see :func:`prepare`).
        tolerance: the checks' tolerance, relative to the output's scale.
        spec: what the ONNX and OpenVINO files record (see :func:`to_onnx`).
        threads: ONNX Runtime / OpenVINO threads of the checks.

    Raises:
        ValueError: an unknown format.
        ExportCheckError: an export whose outputs differ from eager by more than the tolerance allows.
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
            results.append(to_onnx(model, path, batch=batch, threads=threads, spec=spec, **common))
        elif fmt == "openvino":
            results.append(to_openvino(model, path, batch=batch, threads=threads, spec=spec, **common))
        elif fmt == "torchscript":
            results.append(to_torchscript(model, path, batch=batch, **common))
        else:
            results.append(to_torch_export(model, path, batch=max(batch, 2), **common))
    return results

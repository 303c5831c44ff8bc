"""Runners: one forward pass of a model in PyTorch, ONNX Runtime or OpenVINO.

Two forms. :class:`OrtRunner` and :class:`OpenVinoRunner` load an exported file and map a batch to
logits (``run(batch: np.ndarray) -> np.ndarray``), for evaluating the file that ships;
:func:`load_runner` picks one by the file's suffix. The ``*_runner(..., x)`` functions bind a runner to
one input and return a zero-argument callable giving a torch tensor, the unit of work that
:func:`mixnet.measure.timing.interleaved_medians` times and agreement checks compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixnet.errors import require

# Suffixes of the files each runtime runs: OpenVINO reads its IR (.xml beside .bin) and ONNX files.
ORT_SUFFIXES = (".onnx",)
OPENVINO_SUFFIXES = (".xml",)


def ort_session(
    path: str | Path,
    threads: int | None = None,
    *,
    optimization: bool = True,
    profile_prefix: str | None = None,
    disabled_optimizers: Sequence[str] = (),
    optimized_model_path: str | Path | None = None,
):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and thread spinning off.

    Spinning is off because a spinning pool keeps the cores busy after ``run()`` returns, which on a
    shared or small machine slows whatever runs next (two identical sessions measured 0.63x apart with it on).

    Args:
        path: the ONNX file.
        threads: intra-op threads (``None``: ONNX Runtime's choice).
        optimization: apply ONNX Runtime's graph optimizations.
        profile_prefix: record every node's time into a profile file starting with this path
            (``session.end_profiling()`` returns its name).
        disabled_optimizers: ONNX Runtime graph transformers to leave out (e.g. ``QuickGeluFusion``).
        optimized_model_path: also write the graph as ONNX Runtime optimized it (specific to this machine).
    """
    ort = require("onnxruntime", "export", "ONNX Runtime")

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not optimization:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if optimized_model_path is not None:
        so.optimized_model_filepath = str(optimized_model_path)
        so.log_severity_level = 3  # not the notice that a saved blocked-layout graph is machine-specific
    return ort.InferenceSession(
        str(path), so, providers=["CPUExecutionProvider"], disabled_optimizers=list(disabled_optimizers)
    )


def openvino_model(
    path: str | Path, threads: int | None = None, *, shape: Sequence[int] | None = None, profiling: bool = False
):
    """An OpenVINO CPU compiled model of an IR (.xml) or ONNX file: fp32, latency hint, ``threads`` threads.

    Args:
        path: the model file.
        threads: inference threads (``None``: OpenVINO's choice).
        shape: a static input shape to compile for (``None``: the file's own, static or dynamic).
        profiling: record every executed node's time (``request.profiling_info``).
    """
    ov = require("openvino", "export", "OpenVINO")
    core = ov.Core()
    model = core.read_model(str(path))
    if shape is not None:
        model.reshape({model.inputs[0]: list(shape)})
    # fp32 on every CPU: some pick bf16 by default, which would change the logits being compared.
    config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if profiling:
        config["PERF_COUNT"] = True
    return core.compile_model(model, "CPU", config)


class OrtRunner:
    """An exported ONNX file (fp32 or int8) in ONNX Runtime: ``run(batch) -> logits``."""

    def __init__(self, path: str | Path, threads: int | None = None, *, optimization: bool = True) -> None:
        self.path = Path(path)
        self.session = ort_session(path, threads, optimization=optimization)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for an NCHW float32 batch."""
        return self.session.run(None, {self.input_name: batch})[0]

    __call__ = run


class OpenVinoRunner:
    """An OpenVINO IR (.xml) or ONNX file on the CPU: ``run(batch) -> logits``."""

    def __init__(self, path: str | Path, threads: int | None = None, *, shape: tuple[int, ...] | None = None) -> None:
        self.path = Path(path)
        self.compiled = openvino_model(path, threads, shape=shape)
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for an NCHW float32 batch (a copy: the request reuses its buffer)."""
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data)

    __call__ = run


def load_runner(path: str | Path, threads: int | None = None) -> OrtRunner | OpenVinoRunner:
    """The runner for an exported file, chosen by its suffix: ``.onnx`` ONNX Runtime, ``.xml`` OpenVINO.

    Raises:
        ValueError: another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix in ORT_SUFFIXES:
        return OrtRunner(path, threads)
    if suffix in OPENVINO_SUFFIXES:
        return OpenVinoRunner(path, threads)
    raise ValueError(f"{path}: not an exported model file (expected .onnx or OpenVINO .xml)")


def bind(runner: Callable[[np.ndarray], np.ndarray], x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A zero-argument callable running ``runner`` on ``x`` (converted once), returning a torch tensor."""
    batch = x.numpy()
    return lambda: torch.from_numpy(runner(batch))


def torch_runner(
    model: nn.Module,
    x: torch.Tensor,
    memory_format: torch.memory_format | None = None,
    *,
    amp_dtype: torch.dtype | None = None,
) -> Callable[[], torch.Tensor]:
    """One inference-mode forward pass on ``x``; a memory-format change is part of the timed work.

    ``amp_dtype`` runs it under autocast to that dtype on ``x``'s device. On a GPU the call waits for
    the device, so that a timed call holds the GPU work and not only its launch.
    """

    def run() -> torch.Tensor:
        with torch.inference_mode(), _autocast(x, amp_dtype):
            out = model(x if memory_format is None else x.contiguous(memory_format=memory_format))
        _sync(x)
        return out

    return run


def _autocast(x: torch.Tensor, dtype: torch.dtype | None):
    return torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None)


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def ort_runner(path: str | Path, x: torch.Tensor, threads: int | None) -> Callable[[], torch.Tensor]:
    """One ONNX Runtime run of the file at ``path`` on ``x``."""
    return bind(OrtRunner(path, threads), x)


def openvino_runner(path: str | Path, x: torch.Tensor, threads: int | None) -> Callable[[], torch.Tensor]:
    """One OpenVINO run of the file at ``path``, compiled for ``x``'s static shape, on ``x``."""
    return bind(OpenVinoRunner(path, threads, shape=tuple(x.shape)), x)


def file_runner(path: str | Path, x: torch.Tensor, threads: int | None) -> Callable[[], torch.Tensor]:
    """An exported file's runner (by suffix, see :func:`load_runner`) bound to ``x``."""
    if Path(path).suffix.lower() in OPENVINO_SUFFIXES:
        return openvino_runner(path, x, threads)
    return ort_runner(path, x, threads)


def sgd_step_runner(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    memory_format: torch.memory_format | None = None,
    *,
    amp_dtype: torch.dtype | None = None,
) -> Callable[[], None]:
    """One training step: forward, cross-entropy, backward and an SGD update with momentum.

    The model's own mode is kept (call ``.train()`` first); a memory-format change of the input is part
    of the step, as it is for :func:`torch_runner`, and so are ``amp_dtype`` and the wait for a GPU.
    """
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(x, amp_dtype):
            loss = loss_fn(model(x if memory_format is None else x.contiguous(memory_format=memory_format)), y)
        loss.backward()
        opt.step()
        _sync(x)

    return step


def input_shape(path: str | Path) -> list[int | None]:
    """The input shape an exported file declares (``None`` for a dynamic dimension such as the batch)."""
    if Path(path).suffix.lower() in OPENVINO_SUFFIXES:
        ov = require("openvino", "export", "OpenVINO")
        shape = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
        return [d.get_length() if d.is_static else None for d in shape]
    dims = ort_session(path, 1).get_inputs()[0].shape
    return [d if isinstance(d, int) else None for d in dims]

"""An exported file (.onnx, int8 .onnx, OpenVINO .xml) as a classifier module, with the spec it records.

:func:`mixnet.deploy.export.to_onnx` and :func:`~mixnet.deploy.export.to_openvino` write the model's
:class:`mixnet.io.spec.ModelSpec` into the file (``mixnet.spec``: ONNX ``metadata_props``, OpenVINO
``rt_info``); :func:`read_export_spec` reads it back. :class:`ExportedModel` runs the file in its own runtime
(:func:`mixnet.measure.runners.load_runner`: ONNX Runtime for .onnx, OpenVINO for .xml) behind a module's
``forward``, so the evaluation and prediction engines that run PyTorch models run the shipped file unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixnet.errors import require
from mixnet.io.spec import SPEC_KEY, ModelSpec, SpecError
from mixnet.measure.runners import OPENVINO_SUFFIXES, ORT_SUFFIXES, load_runner

EXPORTED_SUFFIXES = ORT_SUFFIXES + OPENVINO_SUFFIXES


class ExportedFileError(ValueError):
    """An exported model file that cannot be run as a mixnet classifier (missing, unreadable, no spec)."""


def is_exported_file(path: str | Path) -> bool:
    """Whether ``path`` names an exported model file (by suffix: .onnx, .xml)."""
    return Path(path).suffix.lower() in EXPORTED_SUFFIXES


def read_export_spec(path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` an exported file records under ``mixnet.spec``.

    Raises:
        ExportedFileError: a missing or unreadable file, or one without a (valid) spec.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportedFileError(f"{str(path)!r} does not exist")
    openvino = path.suffix.lower() in OPENVINO_SUFFIXES
    reader = require("openvino", "export", "Running an OpenVINO file") if openvino else None
    onnx = None if openvino else require("onnx", "export", "Running an ONNX file")
    text = None
    try:
        if openvino:
            model = reader.Core().read_model(str(path))
            if model.has_rt_info(SPEC_KEY):
                text = model.get_rt_info(SPEC_KEY).astype(str)
        else:
            proto = onnx.load(str(path), load_external_data=False)
            text = next((p.value for p in proto.metadata_props if p.key == SPEC_KEY), None)
    except Exception as e:  # noqa: BLE001 - each parser has its own errors (RuntimeError, protobuf's DecodeError)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportedFileError(f"{str(path)!r} is not a readable {path.suffix} model file: {first}") from e
    if text is None:
        raise ExportedFileError(
            f"{str(path)!r} records no {SPEC_KEY} (class names and preprocessing): export it with `mixnet export`"
        )
    try:
        return ModelSpec.from_json(text)
    except SpecError as e:
        raise ExportedFileError(f"{str(path)!r}: {e}") from e


class ExportedModel(nn.Module):
    """An exported file run in its runtime behind ``forward(images) -> logits`` (CPU tensors).

    Args:
        path: an .onnx (fp32 or int8) or OpenVINO .xml file written by :mod:`mixnet.deploy.export`.
        threads: the runtime's intra-op threads (None: its default).

    Attributes:
        spec: what the file records (architecture, class names, preprocessing at the exported size).
        runtime: ``onnxruntime`` or ``openvino``.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.spec = read_export_spec(self.path)
        self.runtime = "openvino" if self.path.suffix.lower() in OPENVINO_SUFFIXES else "onnxruntime"
        self.runner = load_runner(self.path, threads)
        self.num_classes = self.spec.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The file's logits for an NCHW batch (any memory format; run on the CPU)."""
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.runner.run(batch))

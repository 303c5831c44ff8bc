"""Post-training int8 quantization of a MixNet with ONNX Runtime static quantization.

The recipe is ONNX Runtime's own (onnxruntime.quantization docs, "static quantization"): export the
fp32 model (:func:`mixnet.deploy.export.to_onnx`, BN folded and MixConvs fused, so each fused depthwise conv
gets one set of per-channel scales), run ``quant_pre_process`` (shape inference and graph
optimisation), calibrate activation ranges on a few hundred images, and write a QDQ model with
per-channel int8 weights and uint8 activations. Accuracy is then compared on held-out images and the
speed measured interleaved (:mod:`mixnet.measure.timing`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from mixnet.deploy.export import DEFAULT_TOLERANCE, ort_session, to_onnx
from mixnet.deploy.exported import ExportedModel
from mixnet.io.spec import ModelSpec
from mixnet.measure.timing import interleaved_medians

CALIB_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")


class _Reader:
    """An ONNX Runtime CalibrationDataReader over arrays (NCHW float32 batches)."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next calibration batch, or None at the end."""
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}


def quantize_onnx(
    fp32_path: str | Path,
    int8_path: str | Path,
    *,
    calibration: Iterable[np.ndarray],
    per_channel: bool = True,
    method: str = "minmax",
    op_types: Sequence[str] | None = None,
) -> Path:
    """Writes a QDQ int8 copy of an fp32 ONNX model, activation ranges calibrated on ``calibration``.

    Args:
        fp32_path: the fp32 model (e.g. from :func:`mixnet.deploy.export.to_onnx`).
        int8_path: where the int8 model goes (parent folders are created).
        calibration: NCHW float32 input batches, already normalised like the model's inputs.
        per_channel: per-output-channel weight scales (needed for depthwise convs, whose channels
            differ widely in range once BN is folded in).
        method: activation range estimate: ``minmax``, ``entropy`` or ``percentile``.
        op_types: quantize only these ONNX op types (e.g. ``["Conv"]``); None: every op ONNX Runtime can.

    Raises:
        ValueError: an unknown method, or no calibration data.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise ValueError(f"method must be one of {list(CALIB_METHODS)}, got {method!r}")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise FileNotFoundError(f"ONNX model {str(fp32_path)!r} does not exist")
    batches = [np.asarray(b, dtype=np.float32) for b in calibration]
    if not batches:
        raise ValueError("no calibration data: give at least one input batch")
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    input_name = ort_session(fp32_path, 1).get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(
            str(pre),
            str(out),
            _Reader(input_name, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[method],
            op_types_to_quantize=list(op_types) if op_types is not None else None,
        )
        _copy_metadata(fp32_path, out)
        out.replace(int8_path)  # only a finished model lands at int8_path
    return int8_path


def _copy_metadata(source: Path, target: Path) -> None:
    """Gives ``target`` the ``metadata_props`` of ``source`` (its ``mixnet.spec``: class names, preprocessing),
    which ONNX Runtime's quantizer does not carry over."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(source), load_external_data=False).metadata_props}
    if not props:
        return
    proto = onnx.load(str(target))
    props = {p.key: p.value for p in proto.metadata_props} | props
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))


def dataset_batches(dataset: Dataset, n: int, batch_size: int = 32, *, seed: int = 0) -> list[np.ndarray]:
    """Up to ``n`` images of ``dataset`` (a seeded random subset) as NCHW float32 arrays of ``batch_size``."""
    if n < 1:
        raise ValueError(f"need at least one calibration image, got {n}")
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    loader = DataLoader(Subset(dataset, idx), batch_size=batch_size, shuffle=False)
    return [x.numpy() for x, _ in loader]


def file_top1(path: str | Path, dataset: Dataset, *, batch_size: int = 64, threads: int | None = None) -> float:
    """Top-1 accuracy (percent, argmax) of an exported classifier on ``dataset``, run in its runtime.

    The file runs as :class:`mixnet.deploy.exported.ExportedModel`, as ``mixnet eval --weights FILE`` runs it.
    int8 logits tie often; ``mixnet quantize`` therefore scores with ``mixnet eval``'s own engine (``score``
    of :func:`quantize_model`), so the two print the same figure.
    """
    model = ExportedModel(path, threads)
    correct = total = 0
    from tqdm.auto import tqdm  # the [train] extra, needed here only

    bar = tqdm(DataLoader(dataset, batch_size=batch_size), desc=f"eval {Path(path).name}", leave=False, disable=None)
    with torch.inference_mode():
        for x, y in bar:
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    if total == 0:
        raise ValueError("the evaluation set is empty")
    return 100.0 * correct / total


@dataclass(frozen=True)
class QuantizeReport:
    """The outcome of :func:`quantize_model`.

    Attributes:
        fp32_path: the fp32 ONNX model.
        int8_path: the int8 (QDQ) ONNX model.
        calib_images: images used to calibrate.
        eval_images: held-out images the accuracies are measured on.
        fp32_top1: top-1 (percent) of the fp32 model in ONNX Runtime.
        int8_top1: top-1 (percent) of the int8 model.
        fp32_ms: median ms per batch of ``speed_batch`` images, fp32, interleaved with int8.
        int8_ms: the same for int8.
        speed_batch: batch size of the speed measurement.
        threads: ONNX Runtime threads.
    """

    fp32_path: Path
    int8_path: Path
    calib_images: int
    eval_images: int
    fp32_top1: float
    int8_top1: float
    fp32_ms: float
    int8_ms: float
    speed_batch: int
    threads: int

    @property
    def accuracy_drop(self) -> float:
        """fp32 minus int8 top-1, in points."""
        return self.fp32_top1 - self.int8_top1

    @property
    def speedup(self) -> float:
        """fp32 time over int8 time (> 1: int8 faster)."""
        return self.fp32_ms / self.int8_ms

    def as_dict(self) -> dict:
        """Plain-data form (paths as strings) with the derived figures."""
        d = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return {**d, "accuracy_drop": self.accuracy_drop, "speedup": self.speedup}


def quantize_model(
    model: nn.Module,
    out_dir: str | Path,
    *,
    calib_set: Dataset,
    eval_set: Dataset,
    img_size: int,
    calib_images: int = 300,
    name: str = "model",
    threads: int = 2,
    speed_batch: int = 1,
    speed_rounds: int = 15,
    method: str = "minmax",
    tolerance: float = DEFAULT_TOLERANCE,
    spec: ModelSpec | None = None,
    score: Callable[[Path], float] | None = None,
) -> QuantizeReport:
    """Exports ``model`` to fp32 ONNX, quantizes it to int8, and compares accuracy and speed.

    Args:
        model: a MixNet classifier whose classes match the data sets' labels.
        out_dir: folder for ``<name>.fp32.onnx`` and ``<name>.int8.onnx`` (``<name>.onnx`` is left to
            ``mixnet export``).
        calib_set: images to calibrate on (transformed to NCHW tensors, normalised).
        eval_set: held-out images for the accuracy comparison (not used for calibration).
        img_size: input resolution of both sets.
        calib_images: how many calibration images to draw from ``calib_set``.
        name: file name stem.
        threads: ONNX Runtime threads for evaluation and timing.
        speed_batch: batch size of the speed comparison.
        speed_rounds: interleaved rounds of the speed comparison.
        method: calibration method (see :func:`quantize_onnx`).
        tolerance: the fp32 export's check (see :func:`mixnet.deploy.export.to_onnx`).
        spec: what both files record (class names, preprocessing; default: the model's own).
        score: top-1 (percent) of an exported file on ``eval_set``; default :func:`file_top1`.

    Raises:
        ValueError: a non-positive count (``calib_images``, ``threads``, ``speed_batch``,
            ``speed_rounds``) or an unknown ``method``.
    """
    counts = {
        "calib_images": calib_images,
        "threads": threads,
        "speed_batch": speed_batch,
        "speed_rounds": speed_rounds,
    }
    for option, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")
    if method not in CALIB_METHODS:  # before the export, not after it
        raise ValueError(f"method must be one of {list(CALIB_METHODS)}, got {method!r}")
    out_dir = Path(out_dir)
    fp32 = to_onnx(
        model, out_dir / f"{name}.fp32.onnx", img_size=img_size, threads=threads, tolerance=tolerance, spec=spec
    ).path
    calib = dataset_batches(calib_set, calib_images)
    int8 = quantize_onnx(fp32, out_dir / f"{name}.int8.onnx", calibration=calib, method=method)
    if score is None:

        def score(path: Path) -> float:
            return file_top1(path, eval_set, threads=threads)

    fp32_top1, int8_top1 = score(fp32), score(int8)
    x = np.random.default_rng(0).standard_normal((speed_batch, *calib[0].shape[1:]), dtype=np.float32)
    s32, s8 = ort_session(fp32, threads), ort_session(int8, threads)
    feed32, feed8 = {s32.get_inputs()[0].name: x}, {s8.get_inputs()[0].name: x}
    t = interleaved_medians(
        {"fp32": lambda: s32.run(None, feed32), "int8": lambda: s8.run(None, feed8)},
        rounds=speed_rounds,
        iters=3,
        pause_s=0.01,
    )
    return QuantizeReport(
        fp32_path=fp32,
        int8_path=int8,
        calib_images=sum(len(b) for b in calib),
        eval_images=len(eval_set),
        fp32_top1=fp32_top1,
        int8_top1=int8_top1,
        fp32_ms=t["fp32"] * 1e3,
        int8_ms=t["int8"] * 1e3,
        speed_batch=speed_batch,
        threads=threads,
    )

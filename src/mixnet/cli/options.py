"""Options that mean the same thing in every subcommand, defined once.

The vocabulary: ``--model`` (a registered name), ``--weights PATH|hub`` (a model file, or timm's ImageNet
weights), ``--data``, ``--img-size``, ``--crop-pct``, ``--interpolation``, ``--mean``, ``--std``,
``--batch-size``, ``--workers``, ``--device``, ``--amp``, ``--channels-last/--no-channels-last``,
``--threads``, ``--out``, ``--json``, ``--strict-data``, ``--progress/--no-progress``. ``mixnet train``
generates its options from :class:`mixnet.train.config.TrainConfig`, whose fields use the same names.
"""

from __future__ import annotations

import argparse
import warnings

from torch import nn

from mixnet.io.spec import ModelSpec
from mixnet.models.preprocess import INTERPOLATIONS, Preprocess
from mixnet.runtime import AMP_MODES

HUB = "hub"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1."""
    values = [positive_int(t) for t in text.split(",") if t]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated positive integers")
    return values


def names(text: str) -> list[str]:
    """argparse type: comma-separated names."""
    values = [t for t in text.split(",") if t]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return values


def add_model(p: argparse.ArgumentParser, *, weights_help: str = "") -> None:
    """``--model`` and ``--weights``."""
    p.add_argument("--model", default=None, help="registered model name; when omitted, the one the weights record")
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH|hub",
        help="a model file (a mixnet .safetensors or .pth checkpoint, or a timm weights file), or 'hub' for "
        "timm's ImageNet weights from the Hugging Face hub" + (weights_help or "; none: random initialisation"),
    )


def add_preprocess(p: argparse.ArgumentParser) -> None:
    """``--img-size``, ``--crop-pct``, ``--interpolation``, ``--mean``, ``--std`` (default: the model's own)."""
    d = Preprocess()
    p.add_argument(
        "--img-size", type=positive_int, default=None, help=f"input side; default: the model's (else {d.img_size})"
    )
    p.add_argument(
        "--crop-pct",
        type=float,
        default=None,
        help=f"center-crop fraction (resize to img-size/crop-pct first); default: the model's (else {d.crop_pct})",
    )
    p.add_argument(
        "--interpolation",
        choices=INTERPOLATIONS,
        default=None,
        help=f"resize filter; default: the model's (else {d.interpolation})",
    )
    p.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation mean (RGB); default: the model's")
    p.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std (RGB); default: the model's")


def add_runtime(p: argparse.ArgumentParser, *, batch_size: int = 64, workers: int | None = None) -> None:
    """``--batch-size``, ``--device``, ``--amp``, ``--channels-last`` (and ``--workers`` when given a default)."""
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help="images per forward pass")
    if workers is not None:
        p.add_argument("--workers", type=int, default=workers, help="data loader worker processes")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto (CUDA if available)")
    p.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="autocast dtype: auto (bf16 on a CUDA GPU that has it, else full precision), none, bf16, fp16",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels_last (NHWC) memory format (faster depthwise convs on CPU and GPU)",
    )


def add_data(p: argparse.ArgumentParser, text: str) -> None:
    """``--data``."""
    p.add_argument("--data", default=None, help=text)


def add_out(p: argparse.ArgumentParser, default: str | None, text: str) -> None:
    """``--out``."""
    p.add_argument("--out", default=default, help=text)


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``."""
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_strict_data(p: argparse.ArgumentParser) -> None:
    """``--strict-data``."""
    p.add_argument(
        "--strict-data", action="store_true", help="an unreadable image file is an error instead of being skipped"
    )


def add_threads(p: argparse.ArgumentParser, default: int) -> None:
    """``--threads``."""
    p.add_argument("--threads", type=positive_int, default=default, help="torch and ONNX Runtime intra-op threads")


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--progress/--no-progress`` (default: bars only when stderr is a terminal)."""
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: only when stderr is a terminal; otherwise a line per epoch)",
    )


def load_model_from_args(args: argparse.Namespace, *, quiet_random: bool = False) -> tuple[nn.Module, ModelSpec]:
    """The model and its spec from ``--model`` / ``--weights``, in eval mode.

    Args:
        args: parsed options with ``model`` and ``weights``.
        quiet_random: random weights are expected (a speed export), so do not warn about them.

    Raises:
        ValueError: no model name where one is needed.
        CheckpointError, HubError, MissingExtraError: weights that cannot be read or fetched.
    """
    from mixnet.factory import create_model
    from mixnet.io.load import load_model

    if args.weights not in (None, HUB):
        return load_model(args.weights, architecture=args.model)
    if not args.model:
        raise ValueError("no model name: pass --model (or --weights with a mixnet model file)")
    model = create_model(args.model, pretrained=args.weights == HUB).eval()
    if args.weights is None and not quiet_random:
        warnings.warn(f"no --weights given: {args.model} is randomly initialised", stacklevel=2)
    return model, ModelSpec.from_model(model)


def preprocess_from_args(args: argparse.Namespace, spec: ModelSpec) -> Preprocess:
    """The model's preprocessing with any of ``--img-size``/``--crop-pct``/... given on the command line on top.

    Raises:
        ValueError: a bad value (named).
    """
    return spec.preprocess.replace(
        img_size=args.img_size,
        crop_pct=args.crop_pct,
        interpolation=args.interpolation,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
    )

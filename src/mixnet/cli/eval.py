"""``mixnet eval``: top-1/top-5, loss and images/s of a model on a validation set.

A thin layer over :func:`mixnet.evaluate.evaluate`, :func:`mixnet.data.build_eval_dataset` and
:func:`mixnet.checkpoint_meta.model_from_checkpoint`; the eval transform is timm's (resize to
``img_size / crop_pct``, center crop, bicubic, ImageNet mean/std).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator

import torch
from tqdm.auto import tqdm

from mixnet.checkpoint_meta import model_from_checkpoint
from mixnet.data import BUILTIN, IMAGENET_MEAN, IMAGENET_STD, build_eval_dataset, eval_transform
from mixnet.evaluate import evaluate
from mixnet.runtime import amp_dtype, resolve_device

# Eval transform when neither the options nor the checkpoint give one: the paper's, as timm runs it.
DEFAULT_IMG_SIZE = 224
DEFAULT_CROP_PCT = 0.875
DEFAULT_INTERP = "bicubic"


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Options choosing the model and its weights (shared by eval and predict)."""
    p.add_argument("--model", default=None, help="registered model name; when omitted, the checkpoint's model_name")
    w = p.add_mutually_exclusive_group()
    w.add_argument(
        "--checkpoint",
        default=None,
        help="weights file: a `mixnet train` checkpoint, a .safetensors export or a timm file",
    )
    w.add_argument("--pretrained", action="store_true", help="timm's ImageNet weights from the Hugging Face hub")


def add_preprocess_args(p: argparse.ArgumentParser) -> None:
    """Options of the eval transform read by :func:`transform_from_args` (shared by eval, predict, quantize)."""
    p.add_argument(
        "--img-size",
        type=int,
        default=None,
        help=f"input side; when omitted, the checkpoint's img_size, else {DEFAULT_IMG_SIZE}",
    )
    p.add_argument(
        "--crop-pct",
        type=float,
        default=None,
        help=f"center crop fraction (resize to img_size/crop_pct); when omitted, the run's, else {DEFAULT_CROP_PCT}",
    )
    p.add_argument(
        "--interpolation",
        default=None,
        help=f"resize filter (bicubic, bilinear, nearest, ...); when omitted, the run's, else {DEFAULT_INTERP}",
    )
    p.add_argument("--mean", type=float, nargs=3, default=list(IMAGENET_MEAN), help="normalisation mean (RGB)")
    p.add_argument("--std", type=float, nargs=3, default=list(IMAGENET_STD), help="normalisation std (RGB)")


def add_transform_args(p: argparse.ArgumentParser) -> None:
    """Options of the eval transform and the run (shared by eval and predict)."""
    add_preprocess_args(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto (CUDA if available)")
    p.add_argument(
        "--amp", default="none", choices=["none", "bf16", "fp16"], help="autocast dtype (none = full precision)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Shows warnings as ``warning: ...`` lines on stderr (above any progress bar), without source lines."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        tqdm.write(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, dict]:
    """The model and its checkpoint info from --model/--checkpoint/--pretrained."""
    try:
        return model_from_checkpoint(args.model, args.checkpoint, pretrained=args.pretrained)
    except RuntimeError as e:
        if not args.pretrained:
            raise
        # The hub error suggests a local file; on this command that is --checkpoint.
        raise RuntimeError(f"{e}\nHere: mixnet {args.command} --checkpoint path/to/model.safetensors") from e


def transform_from_args(args: argparse.Namespace, info: dict):
    """The eval transform from the options, else the checkpoint's run, else defaults: (transform, settings).

    Raises:
        ValueError: a non-positive ``--img-size`` or a ``--crop-pct`` outside (0, 1].
    """
    if args.img_size is not None and args.img_size < 1:
        raise ValueError(f"--img-size must be a positive integer, got {args.img_size}")
    if args.crop_pct is not None and not 0 < args.crop_pct <= 1:
        raise ValueError(f"--crop-pct must be in (0, 1], got {args.crop_pct}")
    saved = info.get("eval_kwargs") or {}  # a checkpoint may store None
    settings = {
        "img_size": args.img_size or info.get("img_size") or DEFAULT_IMG_SIZE,
        "crop_pct": args.crop_pct or saved.get("crop_pct") or DEFAULT_CROP_PCT,
        "interpolation": args.interpolation or saved.get("interpolation") or DEFAULT_INTERP,
    }
    tf = eval_transform(
        settings["img_size"],
        crop_pct=settings["crop_pct"],
        interpolation=settings["interpolation"],
        mean=tuple(args.mean),
        std=tuple(args.std),
    )
    return tf, settings


def run(args: argparse.Namespace) -> int:
    """Evaluates and prints top-1, top-k, loss and images/s."""
    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, info = load_model(args)
    tf, settings = transform_from_args(args, info)
    img_size = settings["img_size"]
    # Folder names are mapped onto the checkpoint's class names; ImageNet weights without names expect
    # the 1000 synset folders, whose sorted order is the class index order.
    names = info["class_names"] if info["class_names_source"] == "checkpoint" else None
    dataset, classes = build_eval_dataset(args.data, val_tf=tf, strict=args.strict, class_names=names)
    if len(classes) != info["num_classes"]:
        raise ValueError(
            f"the data has {len(classes)} classes but the model has {info['num_classes']} outputs; "
            "evaluate on the classes the model was trained on (a checkpoint with class_names maps them by name)"
        )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    metrics = evaluate(
        model,
        loader,
        device=device,
        amp_dtype=amp_dtype(args.amp, device),
        channels_last=args.channels_last,
        progress=sys.stderr.isatty() and not args.json,
    )
    k = metrics["k"]
    report = {
        "model": info["model_name"],
        "weights": info["weights"],
        "data": str(args.data or BUILTIN),
        **settings,
        "model_kwargs": info["model_kwargs"],
        "num_classes": info["num_classes"],
        "device": str(device),
        "amp": args.amp,
        **metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{info['model_name']} ({info['weights']}) on {report['data']}: {metrics['n']} images at {img_size}px\n"
            f"top-1 {metrics['top1']:.2f}%  top-{k} {metrics[f'top{k}']:.2f}%  loss {metrics['loss']:.4f}  "
            f"{metrics['images_per_s']:.1f} images/s ({metrics['model_images_per_s']:.1f} in the model) on {device}"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet eval``."""
    p = sub.add_parser(
        "eval",
        help="top-1/top-5, loss and images/s on a validation set",
        description="Evaluate a model on an ImageFolder val/ set, a folder of class subfolders or the built-in "
        "digits val split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_args(p)
    p.add_argument(
        "--data",
        default=None,
        help=f"folder with val/<class>/ images, or a folder of class subfolders; when omitted, the built-in "
        f"{BUILTIN!r} val split",
    )
    add_transform_args(p)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--channels-last", action="store_true", help="run in channels_last (NHWC) memory format")
    p.add_argument("--strict", action="store_true", help="stop on unreadable image files instead of skipping them")
    p.set_defaults(func=run)

"""``mixnet predict``: image files or folders -> top-k classes with probabilities, as a table or JSON.

A thin layer over :func:`mixnet.predict.predict`; the model, weights and transform options are the
same as ``mixnet eval``'s.
"""

from __future__ import annotations

import argparse
import json
import sys

from mixnet.cli.eval import add_model_args, add_transform_args, load_model, plain_warnings, transform_from_args
from mixnet.predict import format_table, list_images, predict
from mixnet.runtime import amp_dtype, resolve_device


def run(args: argparse.Namespace) -> int:
    """Predicts and prints; unreadable images are skipped, and it fails only when none could be read."""
    with plain_warnings():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    paths = list_images(args.images)
    device = resolve_device(args.device)
    model, info = load_model(args)
    tf, settings = transform_from_args(args, info)
    results, failed = predict(
        model,
        paths,
        transform=tf,
        class_names=info["class_names"],
        topk=args.topk,
        device=device,
        batch_size=args.batch_size,
        amp_dtype=amp_dtype(args.amp, device),
        progress=sys.stderr.isatty() and not args.json,
    )
    if args.json:
        out = {"model": info["model_name"], "weights": info["weights"], **settings, "predictions": results}
        out["failed"] = [{"path": p, "error": why} for p, why in failed]
        print(json.dumps(out, indent=2))
    elif results:
        print(format_table(results))
    if failed:
        print(f"skipped {len(failed)} of {len(paths)} image(s) that could not be read", file=sys.stderr)
    if not results:
        raise RuntimeError(f"none of the {len(paths)} image(s) could be read: " + "; ".join(p for p, _ in failed))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet predict``."""
    p = sub.add_parser(
        "predict",
        help="top-k classes with probabilities for image files or folders",
        description="Classify images. Class names come from the checkpoint; 1000-class weights without names "
        "use the ImageNet class names.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    add_model_args(p)
    add_transform_args(p)
    p.add_argument("--topk", type=int, default=5, help="classes to report per image")
    p.set_defaults(func=run)

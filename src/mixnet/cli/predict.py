"""``mixnet predict``: image files or folders -> top-k classes with probabilities, as a table or JSON.

A thin layer over :func:`mixnet.eval.predict.predict`; the model, weights and preprocessing options are
the same as ``mixnet eval``'s.
"""

from __future__ import annotations

import argparse
import json
import sys

from mixnet.cli import options


def run(args: argparse.Namespace) -> int:
    """Predicts and prints; unreadable images are skipped, and it fails only when none could be read."""
    from mixnet.data import transform_for
    from mixnet.eval.predict import format_table, list_images, predict
    from mixnet.io.load import imagenet_or_own_class_names
    from mixnet.progress import show_progress
    from mixnet.runtime import amp_dtype, resolve_device

    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    paths = list_images(args.images)
    device = resolve_device(args.device)
    model, spec = options.load_model_from_args(args)
    pre = options.preprocess_from_args(args, spec)
    names, _ = imagenet_or_own_class_names(spec)
    if args.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)
    results, failed = predict(
        model,
        paths,
        transform=transform_for(pre),
        class_names=names,
        topk=args.topk,
        device=device,
        batch_size=args.batch_size,
        amp_dtype=amp_dtype(args.amp, device),
        progress=show_progress(args.progress) and not args.json,
    )
    if args.json:
        out = {"model": spec.architecture, "weights": args.weights or "random", **pre.to_dict()}
        out |= {"predictions": results, "failed": [{"path": p, "error": why} for p, why in failed]}
        print(json.dumps(out, indent=2))
    elif results:
        print(format_table(results))
    if failed:
        print(f"skipped {len(failed)} of {len(paths)} image(s) that could not be read", file=sys.stderr)
    if not results:
        raise ValueError(f"none of the {len(paths)} image(s) could be read: " + "; ".join(p for p, _ in failed))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet predict``."""
    p = sub.add_parser(
        "predict",
        help="top-k classes with probabilities for image files or folders",
        description="Classify images. Class names come from the model file; 1000-class weights without names "
        "use the ImageNet class names.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    options.add_model(p)
    options.add_preprocess(p)
    options.add_runtime(p, batch_size=32)
    p.add_argument("--topk", type=int, default=5, help="classes to report per image")
    options.add_progress(p)
    options.add_json(p)
    p.set_defaults(func=run)

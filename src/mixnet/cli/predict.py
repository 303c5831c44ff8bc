"""``mixnet predict``: image files or folders -> top-k classes with probabilities, as a table or JSON.

A thin layer over :func:`mixnet.eval.predict.predict`; the model, weights (exported .onnx / .xml files
included) and preprocessing options are the same as ``mixnet eval``'s.
"""

from __future__ import annotations

import argparse
import json
import sys

from mixnet.cli import options
from mixnet.cli.eval import EXPORTED_WEIGHTS_HELP, exported_preprocess, load_for_inference


def run(args: argparse.Namespace) -> int:
    """Predicts and prints; unreadable images are skipped, and it fails only when none could be read."""
    from mixnet.data import transform_for
    from mixnet.eval.predict import format_table, list_images, predict
    from mixnet.io.load import imagenet_or_own_class_names
    from mixnet.measure.threads import threads
    from mixnet.progress import show_progress
    from mixnet.runtime import amp_dtype, resolve_device

    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    paths = list_images(args.images)
    model, spec, runtime = load_for_inference(args)
    exported = runtime != "torch"
    device = resolve_device("cpu" if exported else args.device)
    pre = options.preprocess_from_args(args, spec)
    if exported:
        pre = exported_preprocess(pre, spec)
    names, _ = imagenet_or_own_class_names(spec)
    if args.channels_last and not exported:
        import torch

        model = model.to(memory_format=torch.channels_last)
    with threads(args.threads):
        results, failed = predict(
            model,
            paths,
            transform=transform_for(pre),
            class_names=names,
            topk=args.topk,
            device=device,
            batch_size=args.batch_size,
            amp_dtype=None if exported else amp_dtype(args.amp, device),
            progress=show_progress(args.progress) and not args.json,
            workers=args.workers,
            strict=args.strict_data,
        )
    if args.json:
        out = {"model": spec.architecture, "weights": args.weights or "random", "runtime": runtime, **pre.to_dict()}
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
        "use the ImageNet class names. --weights may be an exported .onnx / OpenVINO .xml file (see mixnet eval).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    options.add_model(p, weights_help=EXPORTED_WEIGHTS_HELP)
    options.add_preprocess(p)
    options.add_runtime(p, batch_size=32, workers=0)
    p.add_argument("--topk", type=int, default=5, help="classes to report per image")
    options.add_strict_data(p)
    options.add_threads(p, None)
    options.add_progress(p)
    options.add_json(p)
    p.set_defaults(func=run)

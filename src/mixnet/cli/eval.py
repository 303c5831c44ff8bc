"""``mixnet eval``: top-1/top-5, loss and images/s of a model on a validation set.

A thin layer over :func:`mixnet.eval.evaluate.evaluate`: the model comes from ``--weights`` (any model file,
:func:`mixnet.io.load_model`), the eval transform from the model's own preprocessing unless options
override it.
"""

from __future__ import annotations

import argparse
import json
import sys

from mixnet.cli import options


def run(args: argparse.Namespace) -> int:
    """Evaluates and prints top-1, top-k, loss and images/s."""
    import torch

    from mixnet.data import BUILTIN, build_eval_dataset, transform_for
    from mixnet.eval.evaluate import evaluate
    from mixnet.io.load import imagenet_or_own_class_names
    from mixnet.progress import show_progress
    from mixnet.runtime import amp_dtype, resolve_device

    device = resolve_device(args.device)
    model, spec = options.load_model_from_args(args)
    pre = options.preprocess_from_args(args, spec)
    names, source = imagenet_or_own_class_names(spec)
    # Folder names are mapped onto the model's class names; ImageNet weights without names expect the 1000
    # synset folders, whose sorted order is the class index order.
    dataset, classes = build_eval_dataset(
        args.data,
        val_tf=transform_for(pre),
        strict=args.strict_data,
        class_names=names if source == "checkpoint" else None,
    )
    if len(classes) != spec.num_classes:
        raise ValueError(
            f"the data has {len(classes)} classes but the model has {spec.num_classes} outputs; evaluate on the "
            "classes the model was trained on (a model file with class names maps them by name)"
        )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers, pin_memory=device.type == "cuda"
    )
    metrics = evaluate(
        model,
        loader,
        device=device,
        amp_dtype=amp_dtype(args.amp, device),
        channels_last=args.channels_last,
        progress=show_progress(args.progress) and not args.json,
    )
    k = metrics["k"]
    report = {
        "model": spec.architecture,
        "weights": args.weights or "random",
        "data": str(args.data or BUILTIN),
        **pre.to_dict(),
        "config": dict(spec.config),
        "num_classes": spec.num_classes,
        "device": str(device),
        "amp": args.amp,
        **metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{spec.architecture} ({report['weights']}) on {report['data']}: {metrics['n']} images at "
            f"{pre.img_size}px\ntop-1 {metrics['top1']:.2f}%  top-{k} {metrics[f'top{k}']:.2f}%  loss "
            f"{metrics['loss']:.4f}  {metrics['images_per_s']:.1f} images/s ({metrics['model_images_per_s']:.1f} "
            f"in the model) on {device}",
            file=sys.stdout,
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet eval``."""
    p = sub.add_parser(
        "eval",
        help="top-1/top-5, loss and images/s on a validation set",
        description="Evaluate a model on an ImageFolder val/ set, a folder of class subfolders or the built-in "
        "digits val split, with the model's own eval preprocessing unless overridden.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_model(p)
    options.add_data(
        p,
        "folder with val/<class>/ images, a folder of class subfolders, or a built-in set ('digits', "
        "'cluttered-digits'); when omitted, the built-in digits val split",
    )
    options.add_preprocess(p)
    options.add_runtime(p, batch_size=64, workers=2)
    options.add_strict_data(p)
    options.add_progress(p)
    options.add_json(p)
    p.set_defaults(func=run)

"""``mixnet quantize``: int8 post-training quantization (ONNX Runtime, static, QDQ, per-channel).

Calibrates on images of the data's train split (the built-in digits or an ImageFolder), then reports
fp32 and int8 top-1 on its held-out val split (each file run as ``mixnet eval --weights FILE`` runs it) and
the int8 speed-up measured interleaved. Both files record the class names and preprocessing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixnet.cli import options


def run(args: argparse.Namespace) -> int:
    """Exports, quantizes, evaluates both models and prints accuracy and speed."""
    import torch

    from mixnet.data import build_datasets, transform_for
    from mixnet.deploy.exported import ExportedModel
    from mixnet.deploy.quantize import quantize_model
    from mixnet.eval.evaluate import evaluate

    if args.img_size is not None and args.img_size < 8:
        raise ValueError(f"--img-size must be at least 8, got {args.img_size}")
    model, spec = options.load_model_from_args(args)
    pre = options.preprocess_from_args(args, spec)
    tf = transform_for(pre)
    train_set, val_set, classes = build_datasets(args.data, train_tf=tf, val_tf=tf)
    if len(classes) != spec.num_classes:
        raise ValueError(
            f"the data has {len(classes)} classes but the model has {spec.num_classes} outputs: "
            "pass --weights trained on this data"
        )
    if spec.class_names is not None and list(spec.class_names) != list(classes):
        raise ValueError(f"the model's classes {list(spec.class_names)[:10]} differ from the data's {classes[:10]}")

    def score(path: Path) -> float:
        """The file's top-1 as ``mixnet eval --weights FILE`` computes it (same engine, same tie-breaking)."""
        loader = torch.utils.data.DataLoader(val_set, batch_size=64, shuffle=False)
        return evaluate(ExportedModel(path, args.threads), loader, progress=False)["top1"]

    report = quantize_model(
        model,
        args.out,
        calib_set=train_set,
        eval_set=val_set,
        img_size=pre.img_size,
        calib_images=args.calib_images,
        name=args.name or spec.architecture or "model",
        threads=args.threads,
        speed_batch=args.batch_size,
        speed_rounds=args.rounds,
        method=args.method,
        tolerance=args.tolerance,
        spec=spec.replace(preprocess=pre),
        score=score,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    print(f"{spec.architecture} at {pre.img_size}px; calibrated on {report.calib_images} train images ({args.method})")
    print(f"fp32: {report.fp32_path}  top-1 {report.fp32_top1:.2f}% on {report.eval_images} held-out images")
    print(f"int8: {report.int8_path}  top-1 {report.int8_top1:.2f}%  (drop {report.accuracy_drop:+.2f} points)")
    print(
        f"speed (ONNX Runtime, {report.threads} threads, batch {report.speed_batch}, interleaved medians): "
        f"fp32 {report.fp32_ms:.2f} ms, int8 {report.int8_ms:.2f} ms, int8 speed-up {report.speedup:.2f}x"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet quantize``."""
    from mixnet.deploy.export import DEFAULT_TOLERANCE
    from mixnet.deploy.quantize import CALIB_METHODS

    p = sub.add_parser(
        "quantize",
        help="int8 post-training quantization with ONNX Runtime; prints accuracy drop and speed-up",
        description="Exports the optimized fp32 model to ONNX, quantizes it statically (QDQ, per-channel int8 "
        "weights, uint8 activations) calibrated on train images, and compares fp32 and int8 top-1 on the "
        "held-out images and their speed (ONNX Runtime, interleaved).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_model(p)
    options.add_data(
        p, "'digits' or 'cluttered-digits' (built in), or a folder with train/ and val/; when omitted, the digits"
    )
    p.add_argument("--calib-images", type=options.positive_int, default=300, help="train images to calibrate on")
    p.add_argument("--method", choices=CALIB_METHODS, default="minmax", help="calibration")
    options.add_preprocess(p)
    options.add_threads(p, 2)
    p.add_argument("--batch-size", type=options.positive_int, default=1, help="batch size of the speed comparison")
    p.add_argument("--rounds", type=options.positive_int, default=15, help="interleaved rounds (medians over them)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="the fp32 export's check: largest max-abs difference vs eager, as a fraction of the output's scale",
    )
    p.add_argument("--name", help="file name stem (default: the model name)")
    options.add_out(p, "exports", "output folder for <name>.fp32.onnx and <name>.int8.onnx")
    options.add_json(p)
    p.set_defaults(func=run)

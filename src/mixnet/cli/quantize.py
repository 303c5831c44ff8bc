"""``mixnet quantize``: int8 post-training quantization (ONNX Runtime, static, QDQ, per-channel).

Calibrates on images of the data's train split (the built-in digits or an ImageFolder), then reports
fp32 and int8 top-1 on its held-out val split and the int8 speed-up measured interleaved.
"""

from __future__ import annotations

import argparse
import json
import warnings

from mixnet.checkpoint_meta import model_from_checkpoint
from mixnet.cli.eval import add_model_args, add_preprocess_args, transform_from_args
from mixnet.data import build_datasets
from mixnet.quantize import CALIB_METHODS, quantize_model


def run(args: argparse.Namespace) -> int:
    """Exports, quantizes, evaluates both models and prints accuracy and speed."""
    # Checked before the (slow) model loading and export, each naming its option.
    for option in ("calib_images", "threads", "speed_batch", "speed_rounds"):
        value = getattr(args, option)
        if value < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be a positive integer, got {value}")
    if args.img_size is not None and args.img_size < 8:
        raise ValueError(f"--img-size must be at least 8, got {args.img_size}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model, info = model_from_checkpoint(args.model, args.checkpoint, pretrained=args.pretrained)
    tf, settings = transform_from_args(args, info)
    img_size = settings["img_size"]
    train_set, val_set, classes = build_datasets(args.data, train_tf=tf, val_tf=tf)
    if len(classes) != info["num_classes"]:
        raise ValueError(
            f"the data has {len(classes)} classes but the model has {info['num_classes']} outputs: "
            "pass a --checkpoint trained on this data"
        )
    if info.get("class_names_source") == "checkpoint" and list(info["class_names"]) != list(classes):
        raise ValueError(f"the checkpoint's classes {info['class_names'][:10]} differ from the data's {classes[:10]}")
    report = quantize_model(
        model,
        args.out,
        calib_set=train_set,
        eval_set=val_set,
        img_size=img_size,
        calib_images=args.calib_images,
        name=args.name or info["model_name"],
        threads=args.threads,
        speed_batch=args.speed_batch,
        speed_rounds=args.speed_rounds,
        method=args.method,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    print(f"{info['model_name']} at {img_size}px; calibrated on {report.calib_images} train images ({args.method})")
    print(f"fp32: {report.fp32_path}  top-1 {report.fp32_top1:.2f}% on {report.eval_images} held-out images")
    print(f"int8: {report.int8_path}  top-1 {report.int8_top1:.2f}%  (drop {report.accuracy_drop:+.2f} points)")
    print(
        f"speed (ONNX Runtime, {report.threads} threads, batch {report.speed_batch}, interleaved medians): "
        f"fp32 {report.fp32_ms:.2f} ms, int8 {report.int8_ms:.2f} ms, int8 speed-up {report.speedup:.2f}x"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet quantize``."""
    p = sub.add_parser(
        "quantize",
        help="int8 post-training quantization with ONNX Runtime; prints accuracy drop and speed-up",
        description="Exports the optimized fp32 model to ONNX, quantizes it statically (QDQ, per-channel int8 "
        "weights, uint8 activations) calibrated on train images, and compares fp32 and int8 top-1 on the "
        "held-out images and their speed (ONNX Runtime, interleaved).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("--data", default="digits", help="'digits' (built in) or a folder with train/ and val/")
    p.add_argument("--calib-images", type=int, default=300, help="train images to calibrate on")
    p.add_argument("--method", choices=CALIB_METHODS, default="minmax", help="calibration")
    add_preprocess_args(p)  # --img-size, --crop-pct, --interpolation, --mean, --std: as in mixnet eval
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for evaluation and timing")
    p.add_argument("--speed-batch", type=int, default=1, help="batch size of the speed comparison")
    p.add_argument("--speed-rounds", type=int, default=15, help="interleaved rounds of the speed comparison")
    p.add_argument("--name", help="file name stem (default: the model name)")
    p.add_argument("--out", default="exports", help="output folder for <name>.onnx and <name>.int8.onnx")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)

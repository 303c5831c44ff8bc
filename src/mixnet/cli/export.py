"""``mixnet export``: ONNX / TorchScript / torch.export / OpenVINO files of a MixNet, each checked against eager
PyTorch."""

from __future__ import annotations

import argparse
import json

from mixnet.cli import options


def run(args: argparse.Namespace) -> int:
    """Builds the model, exports every requested format and prints each file with its check."""
    from mixnet.deploy.export import available_formats, export

    if args.img_size is not None and args.img_size < 8:
        raise ValueError(f"--img-size must be at least 8, got {args.img_size}")
    # Random weights are a normal choice here (exporting to measure speed), so they are not warned about.
    model, spec = options.load_model_from_args(args, quiet_random=True)
    img_size = args.img_size or spec.preprocess.img_size
    formats = list(available_formats()) if args.format == "all" else [args.format]
    results = export(
        model,
        args.out,
        formats,
        name=args.name or spec.architecture or "model",
        img_size=img_size,
        batch=args.batch_size,
        optimize=args.optimize,
        tolerance=args.tolerance,
        spec=spec,
        threads=args.threads,
    )
    if args.json:
        report = {
            "model": spec.architecture,
            "weights": args.weights or "random",
            "img_size": img_size,
            "optimize": args.optimize,
            "num_classes": spec.num_classes,
            "tolerance": args.tolerance,
            "files": [r.as_dict() for r in results],
        }
        print(json.dumps(report, indent=2))
        return 0
    what = "optimized (BN folded, MixConv fused)" if args.optimize else "as built"
    print(f"{spec.architecture} {what}, {img_size}px, dynamic batch, {spec.num_classes} classes")
    for r in results:
        print(
            f"{r.format:>12}: {r.path}  max |diff| vs eager {r.max_abs_diff:.2e} at batch {r.check_batch} "
            f"(output scale {r.scale:.3g})"
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet export``."""
    from mixnet.deploy.export import DEFAULT_TOLERANCE, FORMATS

    p = sub.add_parser(
        "export",
        help="export to ONNX / TorchScript / torch.export / OpenVINO, checked against eager PyTorch",
        description="Exports a MixNet (by default optimize_for_inference's rewrite: BN folded, MixConvs fused, "
        "static SAME padding) with a dynamic batch axis. Each file is reloaded and compared with the eager "
        "model on another batch size (ONNX in ONNX Runtime, OpenVINO IR in OpenVINO); a difference above "
        "--tolerance times the output's scale is an error and leaves no file behind. The .onnx and .xml files "
        "record the model's class names and preprocessing, so `mixnet eval` and `mixnet predict` run them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_model(p, weights_help="; none: random initialisation (fine for speed measurements)")
    p.add_argument(
        "--format",
        choices=[*FORMATS, "all"],
        default="onnx",
        help="what to write; all: every format whose runtime is installed (openvino only with openvino)",
    )
    p.add_argument("--img-size", type=options.positive_int, default=None, help="input side; default: the model's")
    p.add_argument(
        "--batch-size",
        type=options.positive_int,
        default=1,
        help="example batch for tracing (the batch axis stays dynamic)",
    )
    p.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export optimize_for_inference's rewrite instead of the model as built",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest max-abs difference allowed vs eager, as a fraction of the output's scale (its largest "
        "absolute value, at least 1)",
    )
    p.add_argument("--name", help="file name stem (default: the model name)")
    options.add_threads(p, 2)
    options.add_out(p, "exports", "output folder")
    options.add_json(p)
    p.set_defaults(func=run)

"""``mixnet export``: ONNX / TorchScript / torch.export files of a MixNet, each checked against eager PyTorch."""

from __future__ import annotations

import argparse
import warnings

from mixnet.cli.eval import add_model_args
from mixnet.export import FORMATS, export


def run(args: argparse.Namespace) -> int:
    """Builds the model, exports every requested format and prints each file with its check."""
    from mixnet.checkpoint_meta import model_from_checkpoint

    if args.img_size is not None and args.img_size < 8:
        raise ValueError(f"--img-size must be at least 8, got {args.img_size}")
    if args.batch < 1:
        raise ValueError(f"--batch must be at least 1, got {args.batch}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "randomly initialised" is expected for a speed export
        model, info = model_from_checkpoint(args.model, args.checkpoint, pretrained=args.pretrained)
    img_size = args.img_size or info.get("img_size") or 224
    formats = list(FORMATS) if args.format == "all" else [args.format]
    name = args.name or info["model_name"]
    results = export(
        model,
        args.out,
        formats,
        name=name,
        img_size=img_size,
        batch=args.batch,
        optimize=args.optimize,
        tolerance=args.tolerance,
    )
    what = "optimized (BN folded, MixConv fused)" if args.optimize else "as built"
    print(f"{info['model_name']} {what}, {img_size}px, dynamic batch, {info['num_classes']} classes")
    for r in results:
        print(f"{r.format:>12}: {r.path}  max |diff| vs eager {r.max_abs_diff:.2e} at batch {r.check_batch}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet export``."""
    p = sub.add_parser(
        "export",
        help="export to ONNX / TorchScript / torch.export, checked against eager PyTorch",
        description="Exports a MixNet (by default optimize_for_inference's rewrite: BN folded, MixConvs fused, "
        "static SAME padding) with a dynamic batch axis. Each file is reloaded and compared with the eager "
        "model on another batch size (ONNX in ONNX Runtime); a difference above --tolerance is an error and "
        "leaves no file behind.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("--format", choices=[*FORMATS, "all"], default="onnx", help="what to write")
    p.add_argument("--img-size", type=int, default=None, help="input resolution (default: checkpoint's, else 224)")
    p.add_argument("--batch", type=int, default=1, help="example batch for tracing (the batch axis stays dynamic)")
    p.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export optimize_for_inference's rewrite instead of the model as built",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max-abs difference allowed vs eager")
    p.add_argument("--name", help="file name stem (default: the model name)")
    p.add_argument("--out", default="exports", help="output folder")
    p.set_defaults(func=run)

"""``mixnet bench``: ours vs timm, eager / optimized / ONNX Runtime / int8, interleaved on this machine."""

from __future__ import annotations

import argparse
import shlex

from mixnet.bench import bench_inference, bench_training, machine_info, write_outputs


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _ints(text: str) -> list[int]:
    values = [_positive(t) for t in text.split(",") if t]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated positive integers")
    return values


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        parts = item.split("x")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected BATCHxPX[,BATCHxPX], got {item!r}")
        out.append((_positive(parts[0]), _positive(parts[1])))
    return out


def run(args: argparse.Namespace) -> int:
    """Runs the requested benchmarks and writes CSV, markdown and PNG into ``--out``."""
    models = [m for m in args.models.split(",") if m]
    rows = []
    if not args.train_only:
        rows += bench_inference(
            models, args.batches, img_size=args.img_size, threads=args.threads, rounds=args.rounds, int8=args.int8
        )
    if args.train or args.train_only:
        rows += bench_training(args.train_models.split(","), args.train_settings, threads=args.threads)
    command = "mixnet " + " ".join(shlex.quote(a) for a in args.argv)
    paths = write_outputs(rows, args.out, machine_info(args.threads), command)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet bench``."""
    p = sub.add_parser(
        "bench",
        help="images/s of ours vs timm (eager, optimized, ONNX Runtime fp32/int8) and training steps",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--models", default="mixnet_s,mixnet_m,mixnet_l", help="comma-separated registered models")
    p.add_argument("--batches", type=_ints, default="1,8", help="comma-separated inference batch sizes")
    p.add_argument("--img-size", type=_positive, default=224, help="inference resolution")
    p.add_argument("--threads", type=_positive, default=2, help="torch and ONNX Runtime intra-op threads")
    p.add_argument("--rounds", type=_positive, default=9, help="interleaved rounds (medians over them)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="include ours in ORT int8")
    p.add_argument("--train", action="store_true", help="also benchmark training steps (forward+backward+step)")
    p.add_argument("--train-only", action="store_true", help="only the training benchmark")
    p.add_argument("--train-models", default="mixnet_s", help="models for the training benchmark")
    p.add_argument("--train-settings", type=_sizes, default="32x224,128x64", help="training BATCHxPX list")
    p.add_argument("--out", default="runs/bench", help="folder for bench.csv, bench.md and bench.png")
    p.set_defaults(func=run)

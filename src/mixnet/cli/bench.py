"""``mixnet bench``: ours vs timm, eager / optimized / ONNX Runtime / int8, interleaved on this machine;
``--peers``: MixNet against EfficientNet-B0, MobileNetV3 and MobileNetV2 in PyTorch, ONNX Runtime and OpenVINO,
with the machine's GEMM peak and published accuracy."""

from __future__ import annotations

import argparse
import shlex

from mixnet.bench.peers import PEERS
from mixnet.cli import options


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        parts = item.split("x")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected BATCHxPX[,BATCHxPX], got {item!r}")
        out.append((options.positive_int(parts[0]), options.positive_int(parts[1])))
    return out


def run(args: argparse.Namespace) -> int:
    """Runs the requested benchmarks and writes CSV, markdown and PNG into ``--out``."""
    from mixnet.bench.suite import bench_inference, bench_training, machine_info, write_outputs
    from mixnet.progress import show_progress

    progress = show_progress(args.progress)
    command = "mixnet " + " ".join(shlex.quote(a) for a in args.argv)
    if args.peers:
        return _peers(args, progress, command)
    args.model = args.model or ["mixnet_s", "mixnet_m", "mixnet_l"]
    rows = []
    if not args.train_only:
        rows += bench_inference(
            args.model,
            args.batch_size,
            img_size=args.img_size,
            threads=args.threads,
            rounds=args.rounds,
            int8=args.int8,
            progress=progress,
        )
    if args.train or args.train_only:
        rows += bench_training(args.train_model, args.train_settings, threads=args.threads, progress=progress)
    paths = write_outputs(rows, args.out, machine_info(args.threads), command)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _peers(args: argparse.Namespace, progress: bool, command: str) -> int:
    from mixnet.bench import peers
    from mixnet.bench.suite import machine_info

    info = machine_info(args.threads)
    rows = peers.bench_peers(
        args.model or ["mixnet_s"],
        args.peer_models,
        args.batch_size,
        img_size=args.img_size,
        threads=args.threads,
        rounds=args.rounds,
        progress=progress,
    )
    paths = peers.write_outputs(rows, args.out, info, command)
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
    p.add_argument(
        "--model",
        type=options.names,
        default=None,
        help="comma-separated registered models or architecture files (.json: our contenders only); default "
        "mixnet_s,mixnet_m,mixnet_l (with --peers: mixnet_s)",
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="compare with the networks a user would pick instead, in PyTorch, ONNX Runtime and OpenVINO, "
        "with the GEMM peak and published top-1 (peers.csv, peers.md, peers.png)",
    )
    p.add_argument(
        "--peer-models",
        type=options.names,
        default=",".join(PEERS),
        help="timm models compared with --peers",
    )
    p.add_argument(
        "--batch-size", type=options.positive_ints, default="1,8", help="comma-separated inference batch sizes"
    )
    p.add_argument("--img-size", type=options.positive_int, default=224, help="inference resolution")
    options.add_threads(p, 2)
    p.add_argument("--rounds", type=options.positive_int, default=9, help="interleaved rounds (medians over them)")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True, help="include ours in ORT int8")
    p.add_argument("--train", action="store_true", help="also benchmark training steps (forward+backward+step)")
    p.add_argument("--train-only", action="store_true", help="only the training benchmark")
    p.add_argument("--train-model", type=options.names, default="mixnet_s", help="models for the training benchmark")
    p.add_argument("--train-settings", type=_sizes, default="32x224,128x64", help="training BATCHxPX list")
    options.add_out(p, "runs/bench", "folder for bench.csv, bench.md and bench.png")
    options.add_progress(p)
    p.set_defaults(func=run)

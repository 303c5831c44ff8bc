"""``mixnet bench``: ours vs timm, eager / optimized / ONNX Runtime / int8, interleaved on this machine;
``--peers``: MixNet against EfficientNet-B0, MobileNetV3 and MobileNetV2 in PyTorch, ONNX Runtime and OpenVINO,
with the machine's GEMM peak and published accuracy; ``--model FILE``: exported files beside their PyTorch
model; ``--profile ort|openvino|train``: where the time goes, per operator."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from mixnet.bench.peers import PEERS
from mixnet.bench.profile import KINDS, REFERENCE, RUNS
from mixnet.cli import options

PROFILE_PEERS = f"{REFERENCE},efficientnet_b0"


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
    from mixnet.bench.suite import bench_inference, bench_training, write_outputs
    from mixnet.deploy.exported import is_exported_file
    from mixnet.measure.machine import machine_info
    from mixnet.progress import show_progress

    progress = show_progress(args.progress)
    command = "mixnet " + " ".join(shlex.quote(a) for a in args.argv)
    if args.profile:
        return _profile(args, command)
    files = [m for m in args.model or [] if is_exported_file(m)]
    if files:
        return _files(args, files, progress, command)
    if args.weights:
        raise ValueError(
            "--weights goes with exported files in --model (.onnx, .xml): the PyTorch model they came from"
        )
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
    return _show(paths)


def _files(args: argparse.Namespace, files: list[str], progress: bool, command: str) -> int:
    from mixnet.bench.files import bench_files
    from mixnet.bench.suite import write_outputs
    from mixnet.io.load import load_model
    from mixnet.measure.machine import machine_info

    others = [m for m in args.model if m not in files]
    if others:
        raise ValueError(f"--model mixes exported files with models ({', '.join(others)}); time them apart")
    model, name = None, None
    if args.weights:
        model, spec = load_model(args.weights)
        name = spec.architecture or Path(args.weights).stem
    rows = bench_files(
        files,
        args.batch_size,
        model=model,
        name=name,
        img_size=args.img_size,
        threads=args.threads,
        rounds=args.rounds,
        progress=progress,
    )
    paths = write_outputs(rows, args.out, machine_info(args.threads), command)
    return _show(paths)


def _profile(args: argparse.Namespace, command: str) -> int:
    from mixnet.bench.profile import run_profile

    paths = run_profile(
        args.profile,
        args.out,
        command,
        models=args.model or ["mixnet_s"],
        peers=args.peer_models if args.peer_models is not None else PROFILE_PEERS.split(","),
        batches=args.batch_size,
        img_size=args.img_size,
        train_settings=args.train_settings,
        threads=args.threads,
        runs=args.profile_runs,
        int8=args.int8,
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _peers(args: argparse.Namespace, progress: bool, command: str) -> int:
    from mixnet.bench import peers
    from mixnet.measure.machine import machine_info

    info = machine_info(args.threads)
    rows = peers.bench_peers(
        args.model or ["mixnet_s"],
        args.peer_models if args.peer_models is not None else PEERS,
        args.batch_size,
        img_size=args.img_size,
        threads=args.threads,
        rounds=args.rounds,
        progress=progress,
    )
    paths = peers.write_outputs(rows, args.out, info, command)
    return _show(paths)


def _show(paths: dict) -> int:
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
        help="comma-separated registered models or architecture files (.json: our contenders only), or exported "
        "files (.onnx fp32/int8, OpenVINO .xml) timed beside the model of --weights; default "
        "mixnet_s,mixnet_m,mixnet_l (with --peers or --profile: mixnet_s)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="with exported files in --model: the model file they were exported from, timed beside them in PyTorch",
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
        default=None,
        help=f"timm models compared with --peers or --profile (default {','.join(PEERS)}; with --profile "
        f"ort|openvino: {PROFILE_PEERS})",
    )
    p.add_argument(
        "--profile",
        choices=KINDS,
        default=None,
        help="per-operator profile instead of timing: ONNX Runtime's or OpenVINO's node times of ours vs timm's and "
        "--peer-models ({ort,ov}_profile_b<batch>.md), or a training step's operator groups (train_profile.md)",
    )
    p.add_argument(
        "--profile-runs",
        type=options.positive_int,
        default=None,
        help="profiled calls (steps for train); default " + ", ".join(f"{k} {v}" for k, v in RUNS.items()),
    )
    p.add_argument(
        "--batch-size", type=options.positive_ints, default="1,8", help="comma-separated inference batch sizes"
    )
    p.add_argument("--img-size", type=options.positive_int, default=224, help="inference resolution")
    options.add_threads(p, 2)
    p.add_argument("--rounds", type=options.positive_int, default=9, help="interleaved rounds (medians over them)")
    p.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include ours in ORT int8 (also --profile ort)",
    )
    p.add_argument("--train", action="store_true", help="also benchmark training steps (forward+backward+step)")
    p.add_argument("--train-only", action="store_true", help="only the training benchmark")
    p.add_argument("--train-model", type=options.names, default="mixnet_s", help="models for the training benchmark")
    p.add_argument(
        "--train-settings", type=_sizes, default="32x224,128x64", help="training BATCHxPX list (also --profile train)"
    )
    options.add_out(p, "runs/bench", "folder for bench.csv, bench.md and bench.png")
    options.add_progress(p)
    p.set_defaults(func=run)

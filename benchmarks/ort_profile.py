"""Where ONNX Runtime spends the time: per-op-type totals of our MixNet export against timm's peers.

ORT's own profiler (``SessionOptions.enable_profiling``) records every node's kernel time; this sums them
by op type (convolutions by kind, read off their weight shape: depthwise by kernel size, 1x1, other) over
``--runs`` calls after a warmup, per network, and prints one markdown table with each network's share of
its own kernel time, plus its time per call. Layout reorders that ORT inserts (``ReorderInput`` /
``ReorderOutput`` around its blocked NCHWc convolutions) show up as their own rows. ``--int8`` adds our
export quantized as ``mixnet quantize`` does it.

    .venv/bin/python benchmarks/ort_profile.py --batch-size 1 --int8 --out docs/bench/ort_profile_b1.md
    .venv/bin/python benchmarks/ort_profile.py --batch-size 8 --runs 20 --int8 --out docs/bench/ort_profile_b8.md
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import onnxruntime as ort
import timm
import torch

from mixnet import create_model
from mixnet.deploy.export import to_onnx
from mixnet.io.convert import from_timm


def conv_kind(op: str, input_shapes: list[dict]) -> str:
    """``depthwise kK`` / ``1x1`` / ``conv kK`` from a convolution node's weight shape (its second input, as
    ORT's profiler records it); the op type itself for anything else."""
    if "Conv" not in op or len(input_shapes) < 2:
        return op
    shape = next(iter(input_shapes[1].values()))
    if len(shape) != 4:
        return f"{op} (other)"
    out_c, in_per_group, kh, _ = shape
    if in_per_group == 1 and out_c > 1:
        return f"{op} depthwise k{kh}"
    return f"{op} 1x1" if kh == 1 else f"{op} k{kh}"


def profile(
    path: Path, batch: int, img_size: int, threads: int, runs: int, warmup: int = 5
) -> tuple[dict[str, float], float]:
    """Microseconds per call by op type (convolutions by kind), and the total per call."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: torch.randn(batch, 3, img_size, img_size).numpy()}
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # The first calls allocate ORT's memory arena: only events after the warmup calls count.
    run_ends = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    start = run_ends[warmup - 1]
    events = [e for e in events if e.get("ts", 0) > start]
    totals: dict[str, float] = collections.defaultdict(float)
    whole = 0.0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            whole += e["dur"]
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        key = conv_kind(e["args"].get("op_name", "?"), e["args"].get("input_type_shape", []))
        totals[key] += e["dur"]
    return {k: v / runs for k, v in totals.items()}, whole / runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", nargs="+", default=["mobilenetv3_large_100", "efficientnet_b0"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument(
        "--int8", action="store_true", help="also our export quantized (ORT static, per-channel QDQ) beside ours fp32"
    )
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args()
    torch.manual_seed(0)
    nets = {}
    ref = timm.create_model("mixnet_s").eval()
    ours = create_model("mixnet_s").eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    nets["ours mixnet_s"] = (ours, True)
    nets["timm mixnet_s"] = (ref, False)
    for name in args.peers:
        nets[f"timm {name}"] = (timm.create_model(name).eval(), False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (net, optimize) in nets.items():
            path = Path(tmp) / (label.replace(" ", "_") + ".onnx")
            to_onnx(net, path, img_size=args.img_size, optimize=optimize, threads=args.threads)
            results[label] = profile(path, args.batch_size, args.img_size, args.threads, args.runs)
            print(f"{label}: {results[label][1] / 1e3:.2f} ms per call", flush=True)
            if args.int8 and label == "ours mixnet_s":
                from mixnet.deploy.quantize import quantize_onnx

                g = torch.Generator().manual_seed(0)
                calib = [torch.randn(8, 3, args.img_size, args.img_size, generator=g).numpy() for _ in range(4)]
                q = quantize_onnx(path, Path(tmp) / "ours_int8.onnx", calibration=calib)
                results["ours mixnet_s int8"] = profile(q, args.batch_size, args.img_size, args.threads, args.runs)
                print(f"ours mixnet_s int8: {results['ours mixnet_s int8'][1] / 1e3:.2f} ms per call", flush=True)
    keys = sorted(
        {k for totals, _ in results.values() for k in totals}, key=lambda k: -results["ours mixnet_s"][0].get(k, 0)
    )
    lines = [
        f"ORT {ort.__version__}, batch {args.batch_size}, {args.img_size} px, {args.threads} threads, "
        f"{args.runs} profiled calls; microseconds per call by op type (share of the network's kernel time)",
        "",
        "| op | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for key in keys:
        cells = []
        for totals, _ in results.values():
            v = totals.get(key, 0.0)
            cells.append(f"{v:.0f} ({100 * v / sum(totals.values()):.0f}%)" if v else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| **model_run (ms)** | " + " | ".join(f"**{w / 1e3:.2f}**" for _, w in results.values()) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

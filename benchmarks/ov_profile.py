"""Where OpenVINO spends the time, and how fast each kind of convolution runs: ours against timm's peers.

OpenVINO's CPU plugin reports every executed node's time (``PERF_COUNT``). This sums them by kind over
``--runs`` calls after a warmup: convolutions by their weight shape (dense 1x1, grouped 1x1, depthwise by
kernel size, other), everything else by node type. Beside each kind's time it gives the MACs of those
convolutions per image (read off the graph: output elements x input channels per group x kernel area,
zero taps of a fused MixConv kernel included, since the hardware computes them) and the GFLOP/s they
reach: the figure that says whether a network is slow because of its shape or because of its kernels.
fp32, latency hint, ``--threads`` threads, static batch.

    .venv/bin/python benchmarks/ov_profile.py --batch-size 1 --out docs/bench/ov_profile_b1.md
    .venv/bin/python benchmarks/ov_profile.py --batch-size 8 --out docs/bench/ov_profile_b8.md
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import timm
import torch

from mixnet import create_model
from mixnet.bench.suite import machine_info
from mixnet.deploy.export import to_onnx
from mixnet.io.convert import from_timm


def conv_kind(op: ov.Node) -> tuple[str, float] | None:
    """(kind, MACs per batch) of a Convolution / GroupConvolution node; None for other nodes."""
    kind = op.get_type_name()
    if kind not in ("Convolution", "GroupConvolution"):
        return None
    w = [d.get_length() for d in op.input(1).get_partial_shape()]
    out = np.prod([d.get_length() for d in op.output(0).get_partial_shape()])
    if kind == "GroupConvolution":  # weights [groups, out/group, in/group, kh, kw]
        groups, _, in_per_group, kh, kw = w
        if in_per_group == 1 and w[1] == 1:
            label = f"depthwise k{kh}"
        else:
            label = "grouped 1x1" if kh == kw == 1 else f"grouped k{kh}"
    else:  # [out, in, kh, kw]
        _, in_per_group, kh, kw = w
        label = "dense 1x1" if kh == kw == 1 else f"dense k{kh}"
    return label, float(out * in_per_group * kh * kw)


def profile(path: Path, batch: int, img_size: int, threads: int, runs: int, warmup: int = 5) -> dict:
    """Per kind: ms per call, and MACs per call for the conv kinds; plus the summed kernel time."""
    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({model.inputs[0]: [batch, 3, img_size, img_size]})
    kinds = {op.get_friendly_name(): conv_kind(op) for op in model.get_ordered_ops()}
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32",
        "PERF_COUNT": True,
    }
    compiled = core.compile_model(model, "CPU", config)
    # Each executed node lists the original ops fused into it; its conv (if any) gives its kind.
    fused = {
        op.get_friendly_name(): op.get_rt_info()["originalLayersNames"].astype(str).split(",")
        for op in compiled.get_runtime_model().get_ordered_ops()
    }
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((batch, 3, img_size, img_size), dtype=np.float32)
    for _ in range(warmup):
        request.infer({0: x})
    ms: dict[str, float] = collections.defaultdict(float)
    macs: dict[str, float] = collections.defaultdict(float)
    for i in range(runs):
        request.infer({0: x})
        for p in request.profiling_info:
            if p.status != p.Status.EXECUTED:
                continue
            kind = next((kinds[n] for n in fused.get(p.node_name, []) if kinds.get(n)), None)
            label = kind[0] if kind else p.node_type
            if not kind and p.node_type in ("Convolution", "GroupConvolution"):
                label += " (weights not found)"
            ms[label] += p.real_time.total_seconds() * 1e3 / runs
            if kind and i == 0:
                macs[label] += kind[1]
    return {"ms": dict(ms), "macs": dict(macs), "total": sum(ms.values())}


def export_all(models: list[str], peers: list[str], img_size: int, tmp: Path, threads: int) -> dict[str, Path]:
    """label -> ONNX file: ours (the optimized rewrite, timm's weights) and timm's networks as they are."""
    files = {}
    torch.manual_seed(0)
    for name in [*models, *peers]:
        net = timm.create_model(name).eval()
        if name in models:
            ours = create_model(name).eval()
            ours.load_state_dict(from_timm(net.state_dict()))
            files[f"ours {name}"] = to_onnx(ours, tmp / f"ours-{name}.onnx", img_size=img_size, threads=threads).path
        files[f"timm {name}"] = to_onnx(
            net, tmp / f"timm-{name}.onnx", img_size=img_size, optimize=False, threads=threads
        ).path
    return files


def table(results: dict[str, dict], batch: int) -> list[str]:
    """One markdown table: a row per kind, ms / share / MMAC per image / GFLOP/s per network."""
    kinds = sorted(
        {k for r in results.values() for k in r["ms"]}, key=lambda k: -max(r["ms"].get(k, 0) for r in results.values())
    )
    head = "| kind | " + " | ".join(results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for k in kinds:
        cells = []
        for r in results.values():
            t = r["ms"].get(k)
            if t is None:
                cells.append("-")
                continue
            cell = f"{t:.2f} ms ({100 * t / r['total']:.0f}%)"
            if k in r["macs"]:
                m = r["macs"][k]
                cell += f", {m / batch / 1e6:.1f} MMAC, {2 * m / (t / 1e3) / 1e9:.0f} GFLOP/s"
            cells.append(cell)
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines.append("| **kernel sum** | " + " | ".join(f"**{r['total']:.2f} ms**" for r in results.values()) + " |")
    return lines


def main() -> None:
    """Exports, profiles and prints (or writes) the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mixnet_s"])
    ap.add_argument("--peers", nargs="+", default=["mobilenetv3_large_100", "efficientnet_b0"])
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine_info(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        files = export_all(args.models, args.peers, args.img_size, Path(tmp), args.threads)
        results = {
            label: profile(p, args.batch_size, args.img_size, args.threads, args.runs) for label, p in files.items()
        }
    cmd = f"`.venv/bin/python benchmarks/ov_profile.py --batch-size {args.batch_size}" + (
        f" --out {args.out}`" if args.out else "`"
    )
    lines = [
        f"OpenVINO {info['openvino']} (CPU plugin, fp32, latency hint), {info['cpu']}, {args.threads} threads; "
        f"batch {args.batch_size}, {args.img_size} px, {args.runs} profiled calls. Command: {cmd}",
        "",
        "Per kind: ms per call (share of the network's summed node time); for convolutions also MMAC per image "
        "(fused MixConv kernels counted with their zero taps) and the GFLOP/s reached. Profiling adds "
        "per-node overhead, so the kernel sum exceeds an unprofiled call.",
        "",
        *table(results, args.batch_size),
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

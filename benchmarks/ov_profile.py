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
import statistics
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import timm
import torch
from torch import nn

from mixnet import create_model
from mixnet.bench.peers import count_macs
from mixnet.bench.suite import machine_info
from mixnet.deploy.export import to_onnx
from mixnet.io.convert import from_timm
from mixnet.layers import MixConv2d

RUNS = 30


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


class Profiled:
    """One network compiled with OpenVINO's per-node profiling on; each :meth:`call` runs it once and returns
    the ms of that call by kind (the MACs by kind are in :attr:`macs`, per call)."""

    def __init__(self, path: Path, batch: int, img_size: int, threads: int) -> None:
        core = ov.Core()
        model = core.read_model(str(path))
        model.reshape({model.inputs[0]: [batch, 3, img_size, img_size]})
        self.kinds = {op.get_friendly_name(): conv_kind(op) for op in model.get_ordered_ops()}
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
            "PERF_COUNT": True,
        }
        compiled = core.compile_model(model, "CPU", config)
        # Each executed node lists the original ops fused into it; its conv (if any) gives its kind.
        self.fused = {
            op.get_friendly_name(): op.get_rt_info()["originalLayersNames"].astype(str).split(",")
            for op in compiled.get_runtime_model().get_ordered_ops()
        }
        self.request = compiled.create_infer_request()
        self.x = np.random.default_rng(0).standard_normal((batch, 3, img_size, img_size), dtype=np.float32)
        self.macs: dict[str, float] = {}

    def call(self) -> dict[str, float]:
        """Runs once; ms by kind for this call."""
        self.request.infer({0: self.x})
        ms: dict[str, float] = collections.defaultdict(float)
        macs: dict[str, float] = collections.defaultdict(float)
        for p in self.request.profiling_info:
            if p.status != p.Status.EXECUTED:
                continue
            kind = next((self.kinds[n] for n in self.fused.get(p.node_name, []) if self.kinds.get(n)), None)
            label = kind[0] if kind else p.node_type
            if not kind and p.node_type in ("Convolution", "GroupConvolution"):
                label += " (weights not found)"
            ms[label] += p.real_time.total_seconds() * 1e3
            if kind:
                macs[label] += kind[1]
        self.macs = dict(macs)
        return dict(ms)


def profile_interleaved(nets: dict[str, Profiled], runs: int, warmup: int = 5) -> dict[str, dict]:
    """Per network: the median over ``runs`` calls of each kind's ms and of the call's total, the networks
    called in turn (order rotated each round), so that a machine whose speed drifts slows them alike."""
    for net in nets.values():
        for _ in range(warmup):
            net.call()
    calls: dict[str, list[dict[str, float]]] = {label: [] for label in nets}
    labels = list(nets)
    for r in range(runs):
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            calls[label].append(nets[label].call())
    out = {}
    for label, got in calls.items():
        kinds = {k for c in got for k in c}
        ms = {k: statistics.median(c.get(k, 0.0) for c in got) for k in kinds}
        total = statistics.median(sum(c.values()) for c in got)
        out[label] = {"ms": ms, "macs": nets[label].macs, "total": total}
    return out


def depthwise_macs(model: nn.Module, img_size: int) -> float:
    """MACs per image of a MixNet's depthwise MixConvs as written, each group with its own kernel (no zero
    taps): what a fused big kernel computes beyond this is padding."""
    total = 0.0

    def hook(mod: MixConv2d, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if mod.depthwise:
            for c, conv in zip(mod.in_splits, mod.convs, strict=True):
                total += out.shape[-2] * out.shape[-1] * c * conv.kernel_size[0] * conv.kernel_size[1]

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, MixConv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, img_size, img_size))
    for h in hooks:
        h.remove()
    return total


def export_all(models: list[str], peers: list[str], img_size: int, tmp: Path, threads: int) -> dict[str, dict]:
    """label -> ONNX file, MACs per image (flop counter) and, for ours, the depthwise MACs without zero taps:
    ours (the optimized rewrite, timm's weights) and timm's networks as they are."""
    nets = {}
    torch.manual_seed(0)
    for name in [*models, *peers]:
        net = timm.create_model(name).eval()
        if name in models:
            ours = create_model(name).eval()
            ours.load_state_dict(from_timm(net.state_dict()))
            path = to_onnx(ours, tmp / f"ours-{name}.onnx", img_size=img_size, threads=threads).path
            nets[f"ours {name}"] = {
                "path": path,
                "macs": count_macs(ours, img_size) * 1e6,
                "dw_macs": depthwise_macs(ours, img_size),
            }
        path = to_onnx(net, tmp / f"timm-{name}.onnx", img_size=img_size, optimize=False, threads=threads).path
        nets[f"timm {name}"] = {"path": path, "macs": count_macs(net, img_size) * 1e6}
    return nets


def floor(ours: dict, ref: dict, batch: int, target: float = 0.9) -> list[str]:
    """The arithmetic of the best case: our 1x1 convs at the reference's own 1x1 rate, our depthwise convs
    without their zero taps at their own rate, the rest as measured, against the time at which our
    hardware efficiency (images/s x MACs) would be ``target`` x the reference's."""
    allowed = ref["total"] * (ours["macs_per_image"] / ref["macs_per_image"]) / target
    pointwise = [k for k in ours["ms"] if k.endswith("1x1")]
    pw_ms = sum(ours["ms"][k] for k in pointwise)
    pw_macs = sum(ours["macs"][k] for k in pointwise)
    ref_rate = ref["macs"]["dense 1x1"] / ref["ms"]["dense 1x1"]  # MACs per ms
    dw = [k for k in ours["ms"] if k.startswith("depthwise")]
    dw_ms = sum(ours["ms"][k] for k in dw)
    dw_fused = sum(ours["macs"][k] for k in dw)
    dw_free = dw_ms * ours["dw_macs"] * batch / dw_fused
    rest = ours["total"] - pw_ms - dw_ms
    best = pw_macs / ref_rate + dw_free + rest
    return [
        f"- allowed for {target}x the reference's efficiency: {ref['total']:.2f} ms x "
        f"({ours['macs_per_image'] / 1e6:.0f} / {ref['macs_per_image'] / 1e6:.0f} MMAC) / {target} = {allowed:.2f} ms",
        f"- ours now: {ours['total']:.2f} ms = 1x1 convs {pw_ms:.2f} + depthwise {dw_ms:.2f} + rest {rest:.2f}",
        f"- 1x1 convs ({pw_macs / batch / 1e6:.1f} MMAC/image) at the reference's 1x1 rate: "
        f"{pw_macs / ref_rate:.2f} ms",
        f"- depthwise without zero taps ({ours['dw_macs'] / 1e6:.1f} of {dw_fused / batch / 1e6:.1f} MMAC/image) "
        f"at today's rate: {dw_free:.2f} ms",
        f"- best case: {pw_macs / ref_rate:.2f} + {dw_free:.2f} + {rest:.2f} = **{best:.2f} ms** "
        f"({'within' if best <= allowed else 'over'} the {allowed:.2f} ms allowed)",
    ]


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
    ap.add_argument("--runs", type=int, default=RUNS)
    ap.add_argument("--reference", default="mobilenetv3_large_100", help="the peer the best case is held against")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine_info(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        nets = export_all(args.models, args.peers, args.img_size, Path(tmp), args.threads)
        profiled = {
            label: Profiled(net["path"], args.batch_size, args.img_size, args.threads) for label, net in nets.items()
        }
        results = profile_interleaved(profiled, args.runs)
        for label, net in nets.items():
            results[label]["macs_per_image"] = net["macs"]
            results[label]["dw_macs"] = net.get("dw_macs")
    runs = f" --runs {args.runs}" if args.runs != RUNS else ""
    cmd = f"`.venv/bin/python benchmarks/ov_profile.py --batch-size {args.batch_size}{runs}" + (
        f" --out {args.out}`" if args.out else "`"
    )
    ref = f"timm {args.reference}"
    floors = []
    for label in results:
        if label.startswith("ours") and ref in results:
            floors += ["", f"Best case for {label} against {ref} (same run):", ""]
            floors += floor(results[label], results[ref], args.batch_size)
    lines = [
        f"OpenVINO {info['openvino']} (CPU plugin, fp32, latency hint), {info['cpu']}, {args.threads} threads; "
        f"batch {args.batch_size}, {args.img_size} px, {args.runs} profiled calls. Command: {cmd}",
        "",
        "Per kind: median ms per call over calls of all networks in turn (share of the network's summed node "
        "time); for convolutions also MMAC per image (fused MixConv kernels counted with their zero taps) and "
        "the GFLOP/s reached. Profiling adds per-node overhead, so the kernel sum exceeds an unprofiled call.",
        "",
        *table(results, args.batch_size),
        *floors,
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

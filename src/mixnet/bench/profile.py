"""Where the time goes (``mixnet bench --profile ort|openvino|train``): per-operator profiles of ours against timm's.

- ``ort``: ONNX Runtime's own profiler (every node's kernel time), summed by op type (convolutions by kind,
  read off their weight shape) over profiled calls after a warmup; ORT's layout reorders around its
  blocked NCHWc convolutions show up as their own rows. Optionally ours quantized to int8 as
  ``mixnet quantize`` does it.
- ``openvino``: OpenVINO's per-node counters (``PERF_COUNT``), summed by kind, the networks called in
  turn; beside each convolution kind the MACs it computes per image (read off the graph, zero taps of a
  fused MixConv kernel included, since the hardware computes them) and the GFLOP/s reached; then the
  best-case arithmetic of ours against a reference peer.
- ``train``: ``torch.profiler`` over SGD steps (forward, cross-entropy, backward, update) in
  channels_last, operators grouped by what they do. The memory-bound groups (BatchNorm, activations,
  copies, concatenation) are what no choice of convolution kernel can speed up.

Every network gets the same weights as in ``mixnet bench --peers`` (ours built from timm's), and the same
ONNX files (ours as the inference rewrite, timm's as they are).
"""

from __future__ import annotations

import collections
import json
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixnet.bench.peers import export_onnx, networks
from mixnet.bench.suite import calibration_batches
from mixnet.errors import require
from mixnet.layers import MixConv2d
from mixnet.measure.machine import machine_info
from mixnet.measure.macs import count_macs
from mixnet.measure.output import emit
from mixnet.measure.runners import openvino_model, ort_session, sgd_step_runner
from mixnet.measure.threads import threads as using_threads

KINDS = ("ort", "openvino", "train")
# Profiled calls (steps for ``train``) when none are asked for.
RUNS = {"ort": 50, "openvino": 30, "train": 3}
WARMUP = 5
# The peer ours is held against in the OpenVINO best case.
REFERENCE = "mobilenetv3_large_100"


# ONNX Runtime


def ort_conv_kind(op: str, input_shapes: list[dict]) -> str:
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


def ort_profile(path: Path, batch: int, img_size: int, threads: int, runs: int) -> tuple[dict[str, float], float]:
    """Microseconds per call by op type (convolutions by kind), and the whole call's microseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(path, threads, profile_prefix=str(Path(tmp) / "prof"))
        feed = {session.get_inputs()[0].name: torch.randn(batch, 3, img_size, img_size).numpy()}
        for _ in range(WARMUP + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # The first calls allocate ORT's memory arena: only events after the warmup calls count.
    run_ends = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    events = [e for e in events if e.get("ts", 0) > run_ends[WARMUP - 1]]
    totals: dict[str, float] = collections.defaultdict(float)
    whole = 0.0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            whole += e["dur"]
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        totals[ort_conv_kind(e["args"].get("op_name", "?"), e["args"].get("input_type_shape", []))] += e["dur"]
    return {k: v / runs for k, v in totals.items()}, whole / runs


def ort_table(files: dict[str, Path], batch: int, img_size: int, threads: int, runs: int, command: str) -> str:
    """The markdown table of :func:`ort_profile` for every file (label -> path), ours first."""
    import onnxruntime as ort

    results = {label: ort_profile(path, batch, img_size, threads, runs) for label, path in files.items()}
    first = next(iter(results.values()))[0]
    keys = sorted({k for totals, _ in results.values() for k in totals}, key=lambda k: -first.get(k, 0))
    lines = [
        f"ORT {ort.__version__}, batch {batch}, {img_size} px, {threads} threads, {runs} profiled calls; "
        f"microseconds per call by op type (share of the network's kernel time). Command: `{command}`",
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
    return "\n".join(lines) + "\n"


# OpenVINO


def ov_conv_kind(op) -> tuple[str, float] | None:
    """(kind, MACs per batch) of a Convolution / GroupConvolution node; None for other nodes."""
    kind = op.get_type_name()
    if kind not in ("Convolution", "GroupConvolution"):
        return None
    w = [d.get_length() for d in op.input(1).get_partial_shape()]
    out = np.prod([d.get_length() for d in op.output(0).get_partial_shape()])
    if kind == "GroupConvolution":  # weights [groups, out/group, in/group, kh, kw]
        _, out_per_group, in_per_group, kh, kw = w
        if in_per_group == 1 and out_per_group == 1:
            label = f"depthwise k{kh}"
        else:
            label = "grouped 1x1" if kh == kw == 1 else f"grouped k{kh}"
    else:  # [out, in, kh, kw]
        _, in_per_group, kh, kw = w
        label = "dense 1x1" if kh == kw == 1 else f"dense k{kh}"
    return label, float(out * in_per_group * kh * kw)


class OvProfiled:
    """One network compiled with OpenVINO's per-node profiling on; each :meth:`call` runs it once and returns
    the ms of that call by kind (the MACs by kind are in :attr:`macs`, per call)."""

    def __init__(self, path: Path, batch: int, img_size: int, threads: int) -> None:
        ov = require("openvino", "bench", "mixnet bench --profile openvino")
        shape = [batch, 3, img_size, img_size]
        model = ov.Core().read_model(str(path))
        model.reshape({model.inputs[0]: shape})
        self.kinds = {op.get_friendly_name(): ov_conv_kind(op) for op in model.get_ordered_ops()}
        compiled = openvino_model(path, threads, shape=shape, profiling=True)
        # Each executed node lists the original ops fused into it; its conv (if any) gives its kind.
        self.fused = {
            op.get_friendly_name(): op.get_rt_info()["originalLayersNames"].astype(str).split(",")
            for op in compiled.get_runtime_model().get_ordered_ops()
        }
        self.request = compiled.create_infer_request()
        self.x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
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


def ov_profile_interleaved(nets: dict[str, OvProfiled], runs: int) -> dict[str, dict]:
    """Per network: the median over ``runs`` calls of each kind's ms and of the call's total, the networks
    called in turn (order rotated each round), so that a machine whose speed drifts slows them alike."""
    for net in nets.values():
        for _ in range(WARMUP):
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
        out[label] = {"ms": ms, "macs": nets[label].macs, "total": statistics.median(sum(c.values()) for c in got)}
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


def best_case(ours: dict, ref: dict, batch: int, target: float = 0.9) -> list[str]:
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


def ov_table(
    nets: dict[tuple[str, str], nn.Module],
    files: dict[tuple[str, str], Path],
    batch: int,
    img_size: int,
    threads: int,
    runs: int,
    command: str,
) -> str:
    """The markdown of the OpenVINO profile of every network, with the best case of ours against the reference."""
    profiled = {f"{impl} {name}": OvProfiled(files[(impl, name)], batch, img_size, threads) for impl, name in nets}
    results = ov_profile_interleaved(profiled, runs)
    for (impl, name), net in nets.items():
        results[f"{impl} {name}"]["macs_per_image"] = count_macs(net, img_size) * 1e6
        if impl == "ours":
            results[f"{impl} {name}"]["dw_macs"] = depthwise_macs(net, img_size)
    kinds = sorted(
        {k for r in results.values() for k in r["ms"]}, key=lambda k: -max(r["ms"].get(k, 0) for r in results.values())
    )
    table = ["| kind | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
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
        table.append(f"| {k} | " + " | ".join(cells) + " |")
    table.append("| **kernel sum** | " + " | ".join(f"**{r['total']:.2f} ms**" for r in results.values()) + " |")
    ref = f"timm {REFERENCE}"
    floors = []
    for label in results:
        if label.startswith("ours") and ref in results:
            floors += ["", f"Best case for {label} against {ref} (same run):", ""]
            floors += best_case(results[label], results[ref], batch)
    info = machine_info(threads)
    lines = [
        f"OpenVINO {info['openvino']} (CPU plugin, fp32, latency hint), {info['cpu']}, {threads} threads; "
        f"batch {batch}, {img_size} px, {runs} profiled calls. Command: `{command}`",
        "",
        "Per kind: median ms per call over calls of all networks in turn (share of the network's summed node "
        "time); for convolutions also MMAC per image (fused MixConv kernels counted with their zero taps) and "
        "the GFLOP/s reached. Profiling adds per-node overhead, so the kernel sum exceeds an unprofiled call.",
        "",
        *table,
        *floors,
    ]
    return "\n".join(lines) + "\n"


# Training

GROUPS = {
    "convolution backward": ("convolution_backward",),
    "convolution forward": ("mkldnn_convolution", "_convolution_depthwise", "thnn_conv", "conv_depthwise"),
    "BatchNorm backward": ("batch_norm_backward",),
    "BatchNorm forward": ("native_batch_norm", "_batch_norm_with_update", "batch_norm_update_stats"),
    "activations (ReLU, swish, sigmoid) fwd+bwd": ("silu", "threshold_backward", "clamp_min", "relu", "sigmoid"),
    "layout copies": ("aten::copy_", "aten::contiguous", "aten::clone"),
    "concatenation": ("aten::cat",),
    "elementwise mul/add (SE, residual, optimizer)": (
        "aten::mul",
        "aten::add",
        "aten::add_",
        "aten::mul_",
        "aten::div",
    ),
}


def group_of(name: str) -> str:
    """The group of an ATen operator name (``other`` when none matches)."""
    return next((group for group, keys in GROUPS.items() if any(k in name for k in keys)), "other")


def train_step_profile(model: nn.Module, batch: int, size: int, steps: int) -> dict[str, float]:
    """Seconds per SGD step by group (self CPU time of every operator), plus ``total``; channels_last."""
    from torch.profiler import ProfilerActivity, profile

    cl = torch.channels_last
    model = model.train().to(memory_format=cl)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=cl)
    step = sgd_step_runner(model, x, torch.randint(0, 1000, (batch,)))
    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    out: dict[str, float] = collections.defaultdict(float)
    for e in prof.key_averages():
        out[group_of(e.key)] += e.self_cpu_time_total / 1e6 / steps
    out["total"] = sum(out.values())
    return dict(out)


def train_table(models: Sequence[str], settings: Sequence[tuple[int, int]], threads: int, steps: int, command: str):
    """The markdown of the training profile of ours and timm's for each model, one table per (batch, size)."""
    timm = require("timm", "bench", "mixnet bench --profile train")
    from mixnet.factory import create_model

    info = machine_info(threads)
    lines = [
        f"{info['cpu']}, {threads} threads, torch {info['torch']}, timm {info['timm']}; channels_last, SGD; "
        f"{steps} profiled steps. Command: `{command}`",
        "",
        "Self CPU time per step by operator group (profiling adds overhead; the total is not a clean step time).",
    ]
    for batch, size in settings:
        torch.manual_seed(0)
        results = {}
        for name in models:
            results[f"ours {name}"] = train_step_profile(create_model(name), batch, size, steps)
            results[f"timm {name}"] = train_step_profile(timm.create_model(name), batch, size, steps)
        lines += ["", f"### batch {batch}, {size} px", ""]
        lines += ["| group | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
        for g in [*GROUPS, "other"]:
            cells = [f"{r.get(g, 0):.3f} s ({100 * r.get(g, 0) / r['total']:.0f}%)" for r in results.values()]
            lines.append(f"| {g} | " + " | ".join(cells) + " |")
        lines.append("| **total** | " + " | ".join(f"**{r['total']:.3f} s**" for r in results.values()) + " |")
    return "\n".join(lines) + "\n"


def run_profile(
    kind: str,
    out_dir: str | Path,
    command: str,
    *,
    models: Sequence[str] = ("mixnet_s",),
    peers: Sequence[str] = (REFERENCE, "efficientnet_b0"),
    batches: Sequence[int] = (1,),
    img_size: int = 224,
    train_settings: Sequence[tuple[int, int]] = ((32, 224),),
    threads: int = 2,
    runs: int | None = None,
    int8: bool = True,
) -> list[Path]:
    """Profiles with ``kind`` (one of :data:`KINDS`), prints and writes the markdown; returns the files.

    ``ort`` and ``openvino`` write ``{kind}_profile_b{batch}.md`` per batch size (``ov_profile_...`` for
    OpenVINO); ``train`` writes ``train_profile.md`` with a table per training setting.

    Raises:
        ValueError: an unknown kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown profile {kind!r}; choose one of {', '.join(KINDS)}")
    runs = runs or RUNS[kind]
    out = Path(out_dir)
    written = []
    with using_threads(threads):
        if kind == "train":
            written.append(out / "train_profile.md")
            emit(train_table(models, train_settings, threads, runs, command), written[-1])
            return written
        require("onnxruntime" if kind == "ort" else "openvino", "bench", f"mixnet bench --profile {kind}")
        # Ours first, then timm's of the same networks, then the peers (the tables' column order).
        nets = dict(sorted(networks(models, peers).items(), key=lambda item: item[0][0] != "ours"))
        with tempfile.TemporaryDirectory() as tmp:
            files = export_onnx(nets, img_size, threads, Path(tmp))
            for batch in batches:
                if kind == "ort":
                    labelled = {f"{impl} {name}": path for (impl, name), path in files.items()}
                    if int8:
                        labelled = _with_int8(labelled, models, img_size, Path(tmp))
                    written.append(out / f"ort_profile_b{batch}.md")
                    emit(ort_table(labelled, batch, img_size, threads, runs, command), written[-1])
                else:
                    written.append(out / f"ov_profile_b{batch}.md")
                    emit(ov_table(nets, files, batch, img_size, threads, runs, command), written[-1])
    return written


def _with_int8(files: dict[str, Path], models: Sequence[str], img_size: int, tmp: Path) -> dict[str, Path]:
    """``files`` with our exports quantized as ``mixnet quantize`` does it, each right after its fp32 file."""
    from mixnet.deploy.quantize import quantize_onnx

    out = {}
    for label, path in files.items():
        out[label] = path
        if label.startswith("ours ") and label.split(" ", 1)[1] in models:
            q = tmp / f"{path.stem}.int8.onnx"
            if not q.exists():
                quantize_onnx(path, q, calibration=calibration_batches(img_size))
            out[f"{label} int8"] = q
    return out

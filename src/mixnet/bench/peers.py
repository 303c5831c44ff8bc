"""MixNet against the networks a user would pick instead, in every runtime, with the machine's peak.

``mixnet bench --peers`` runs, interleaved in one process per batch size: MixNet-S as timm builds it and as
we deploy it, and timm's EfficientNet-B0, MobileNetV3-Large and MobileNetV2, each in PyTorch (channels_last,
the faster eager layout on x86), ONNX Runtime and OpenVINO (fp32); plus a 2048x2048 fp32 GEMM, whose
speed is this machine's practical peak in the same run. Hardware efficiency is
``images/s x 2 x MACs / peak``: how much of the machine a network's arithmetic uses, which compares
networks of different sizes fairly. MACs are counted by ``torch.utils.flop_counter`` on each PyTorch model
(convolutions and matrix products), the same counter for every network.

The published ImageNet top-1 of each network (from its paper) against its measured latency is the chart
that says whether MixNet is worth it on this machine.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mixnet.errors import require
from mixnet.measure.agreement import check_agreement
from mixnet.measure.machine import header
from mixnet.measure.macs import count_macs
from mixnet.measure.output import read_dataclass_csv
from mixnet.measure.output import write_outputs as write_files
from mixnet.measure.runners import openvino_runner, ort_runner, torch_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians

PEERS = ("efficientnet_b0", "mobilenetv3_large_100", "mobilenetv2_100")
# ImageNet top-1 (%) as each network's paper reports it (224 px, single crop).
PUBLISHED_TOP1 = {
    "mixnet_s": (75.8, "MixNet paper, Table 2"),
    "mixnet_m": (77.0, "MixNet paper, Table 2"),
    "efficientnet_b0": (77.1, "EfficientNet paper (arXiv v5), Table 2"),
    "mobilenetv3_large_100": (75.2, "MobileNetV3 paper, Table 3"),
    "mobilenetv2_100": (72.0, "MobileNetV2 paper, Table 4"),
}
RUNTIMES = ("PyTorch", "ORT", "OpenVINO")
GEMM = "GEMM 2048 fp32"
GEMM_N = 2048


@dataclass
class PeerRow:
    """One network in one runtime at one batch size."""

    model: str
    impl: str  # "ours" or "timm"
    runtime: str
    batch: int
    img_size: int
    threads: int
    macs_m: float
    ms_per_batch: float
    images_per_s: float
    peak_gflops: float
    pct_of_peak: float
    top1: float
    max_abs_diff: float = float("nan")

    @property
    def label(self) -> str:
        """``ours mixnet_s ORT`` etc."""
        return f"{self.impl} {self.model} {self.runtime}"


def gemm_runner(threads: int) -> Callable[[], torch.Tensor]:
    """One 2048x2048 fp32 matrix product (2 x 2048^3 FLOPs) with torch."""
    del threads  # torch's thread count is set once for the whole run
    g = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=g)
    b = torch.randn(GEMM_N, GEMM_N, generator=g)
    return lambda: torch.mm(a, b)


def networks(models: Sequence[str], peers: Sequence[str]) -> dict[tuple[str, str], nn.Module]:
    """(impl, model) -> eval-mode network: timm's for every name, ours for the MixNets (timm's weights)."""
    timm = require("timm", "bench", "mixnet bench --peers")
    from mixnet.factory import create_model
    from mixnet.io.convert import from_timm

    torch.manual_seed(0)
    nets: dict[tuple[str, str], nn.Module] = {}
    for name in [*models, *peers]:
        nets[("timm", name)] = timm.create_model(name).eval()
    for name in models:
        ours = create_model(name).eval()
        ours.load_state_dict(from_timm(nets[("timm", name)].state_dict()))
        nets[("ours", name)] = ours
    return nets


def export_onnx(
    nets: dict[tuple[str, str], nn.Module], img_size: int, threads: int, workdir: Path
) -> dict[tuple[str, str], Path]:
    """(impl, model) -> its ONNX file in ``workdir`` (exported once): ours as the optimized rewrite, timm's as is."""
    from mixnet.deploy.export import to_onnx

    paths = {}
    for (impl, name), net in nets.items():
        path = workdir / f"{impl}-{name}-{img_size}px.onnx"
        if not path.exists():
            to_onnx(net, path, img_size=img_size, optimize=impl == "ours", threads=threads)
        paths[(impl, name)] = path
    return paths


def peer_contenders(
    nets: dict[tuple[str, str], nn.Module], batch: int, img_size: int, threads: int, workdir: Path
) -> dict[str, tuple[str, str, str, Callable[[], torch.Tensor]]]:
    """label -> (impl, model, runtime, run) for every network in every runtime, plus the GEMM and an A/A pair.

    ONNX files are exported once per network into ``workdir`` (:func:`export_onnx`).
    """
    from mixnet.deploy.optimize import optimize_for_inference

    x = torch.randn(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(1))
    files = export_onnx(nets, img_size, threads, workdir)
    out: dict[str, tuple[str, str, str, Callable[[], torch.Tensor]]] = {}
    for (impl, name), net in nets.items():
        if impl == "ours":
            torch_run = torch_runner(optimize_for_inference(net, img_size=img_size), x)
        else:
            torch_run = torch_runner(net.to(memory_format=torch.channels_last), x, torch.channels_last)
        for runtime, run in (
            ("PyTorch", torch_run),
            ("ORT", ort_runner(files[(impl, name)], x, threads)),
            ("OpenVINO", openvino_runner(files[(impl, name)], x, threads)),
        ):
            out[f"{impl} {name} {runtime}"] = (impl, name, runtime, run)
    first = next(iter(nets))
    out[f"{first[0]} {first[1]} ORT (A/A)"] = (first[0], first[1], "ORT (A/A)", ort_runner(files[first], x, threads))
    out[GEMM] = ("", "", "GEMM", gemm_runner(threads))
    return out


def bench_peers(
    models: Sequence[str] = ("mixnet_s",),
    peers: Sequence[str] = PEERS,
    batches: Sequence[int] = (1, 8),
    *,
    img_size: int = 224,
    threads: int = 2,
    rounds: int = 9,
    iters: int = 2,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> list[PeerRow]:
    """Images/s, % of the GEMM peak and published top-1 of every network in every runtime (see the module).

    Every runtime of one network gets the same weights and input; they must agree within 1e-3 of the
    output's scale (:mod:`mixnet.measure.agreement`; the run stops otherwise), and ours must agree with timm's
    MixNet.
    """
    require("openvino", "bench", "mixnet bench --peers")
    nets = networks(models, peers)
    macs = {key: count_macs(net, img_size) for key, net in nets.items()}
    rows: list[PeerRow] = []
    with using_threads(threads), tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for batch in batches:
            if progress:
                print(f"bench peers: batch {batch} ...", flush=True)
            contenders = peer_contenders(nets, batch, img_size, threads, work)
            # Every runtime of a network must compute the logits of timm's PyTorch model of it.
            reference = {k: f"timm {v[1]} PyTorch" for k, v in contenders.items() if k != GEMM}
            diffs = check_agreement({k: v[3] for k, v in contenders.items()}, reference, checked=lambda _: True)
            medians = interleaved_medians(
                {k: v[3] for k, v in contenders.items()}, rounds=rounds, iters=iters, pause_s=0.05, progress=progress
            )
            peak = 2 * GEMM_N**3 / medians[GEMM] / 1e9
            for label, (impl, name, runtime, _) in contenders.items():
                if label == GEMM:
                    continue
                s = medians[label]
                m = macs[(impl, name)]
                rows.append(
                    PeerRow(
                        name,
                        impl,
                        runtime,
                        batch,
                        img_size,
                        threads,
                        round(m, 1),
                        s * 1e3,
                        batch / s,
                        peak,
                        100 * (batch / s) * 2 * m * 1e6 / (peak * 1e9),
                        PUBLISHED_TOP1.get(name, (math.nan, ""))[0],
                        diffs.get(label, math.nan),
                    )
                )
    return rows


def best_per_model(rows: Sequence[PeerRow]) -> dict[tuple[str, str, int], PeerRow]:
    """The fastest runtime of each (impl, model, batch)."""
    best: dict[tuple[str, str, int], PeerRow] = {}
    for r in rows:
        if "(A/A)" in r.runtime:
            continue
        key = (r.impl, r.model, r.batch)
        if key not in best or r.images_per_s > best[key].images_per_s:
            best[key] = r
    return best


def read_rows(path: str | Path) -> list[PeerRow]:
    """Reads ``peers.csv`` back (to redraw without measuring)."""
    return read_dataclass_csv(path, PeerRow)


def write_outputs(rows: list[PeerRow], out_dir: str | Path, info: dict[str, str], command: str) -> dict[str, Path]:
    """Writes ``peers.csv``, ``peers.md`` and ``peers.png`` into ``out_dir``; returns their paths."""
    return write_files(
        out_dir, "peers", rows, PeerRow, format_markdown(rows, info, command), lambda path: plot(rows, path, info)
    )


def format_markdown(rows: list[PeerRow], info: dict[str, str], command: str) -> str:
    """The machine, the command, one table per batch size, and the ratios that decide."""
    peaks = sorted({round(r.peak_gflops, 1) for r in rows})
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {header(info)}",
        "",
        f"Command: `{command}`",
        "",
        "Medians of interleaved rounds, every network in every runtime in one run per batch size (same input, "
        "same weights per network: max abs diff is the logit difference to timm's PyTorch model). PyTorch: "
        "timm's models in channels_last, ours as the optimized rewrite; ORT: 2 threads, no spinning; OpenVINO: "
        "fp32, latency hint. % of peak = images/s x 2 x MACs / the GEMM's FLOP/s in the same run "
        f"({', '.join(f'{p:g}' for p in peaks)} GFLOP/s). The A/A row is one contender measured twice: its "
        "distance from its twin is the noise. Top-1: ImageNet, as each paper reports it.",
    ]
    for batch in sorted({r.batch for r in rows}):
        lines += [
            "",
            f"### batch {batch}",
            "",
            "| network | runtime | images/s | ms/batch | MACs (M) | % of peak | top-1 (paper) | max abs diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted((r for r in rows if r.batch == batch), key=lambda r: -r.images_per_s):
            lines.append(
                f"| {r.impl} {r.model} | {r.runtime} | {r.images_per_s:.1f} | {r.ms_per_batch:.2f} | {r.macs_m:.0f} | "
                f"{r.pct_of_peak:.0f}% | {r.top1:.1f} | {r.max_abs_diff:.1e} |"
            )
    lines += ["", "### The ratios", ""]
    lines += summary_lines(rows)
    return "\n".join(lines) + "\n"


def summary_lines(rows: Sequence[PeerRow]) -> list[str]:
    """Ours' best against timm's MixNet in its best runtime, and our efficiency against MobileNetV3's."""
    best = best_per_model(rows)
    out = []
    for batch in sorted({r.batch for r in rows}):
        for (impl, name, b), ours in best.items():
            if impl != "ours" or b != batch:
                continue
            theirs = best.get(("timm", name, batch))
            if theirs:
                out.append(
                    f"- batch {batch}: ours {name} ({ours.runtime}) {ours.images_per_s:.1f} images/s = "
                    f"{ours.images_per_s / theirs.images_per_s:.2f}x timm's {name} in its best runtime "
                    f"({theirs.runtime}, {theirs.images_per_s:.1f})"
                )
            v3 = best.get(("timm", "mobilenetv3_large_100", batch))
            if v3:
                out.append(
                    f"- batch {batch}: ours {name} uses {ours.pct_of_peak:.0f}% of peak, MobileNetV3-Large "
                    f"({v3.runtime}) {v3.pct_of_peak:.0f}%: {ours.pct_of_peak / v3.pct_of_peak:.2f}x its efficiency"
                )
    return out


def plot(rows: list[PeerRow], path: Path, info: dict[str, str]) -> None:
    """Published top-1 against measured latency (each network's runtimes; its fastest ringed), per batch size."""
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()

    rows = [r for r in rows if "(A/A)" not in r.runtime and not math.isnan(r.top1)]
    batches = sorted({r.batch for r in rows})
    best = best_per_model(rows)
    markers = {"PyTorch": "s", "ORT": "o", "OpenVINO": "^"}
    fig, axes = plt.subplots(1, len(batches), figsize=(6.5 * len(batches), 4.8), squeeze=False)
    colors = {}
    for ax, batch in zip(axes[0], batches, strict=True):
        for r in (r for r in rows if r.batch == batch):
            key = f"{r.impl} {r.model}"
            color = colors.setdefault(key, f"C{len(colors)}")
            ms = r.ms_per_batch / r.batch
            ax.scatter([ms], [r.top1], marker=markers.get(r.runtime, "x"), color=color, s=40, alpha=0.8)
            if best[(r.impl, r.model, batch)] is r:
                ax.scatter([ms], [r.top1], s=160, facecolors="none", edgecolors=color, lw=1.5)
                ax.annotate(f"{key} ({r.runtime})", (ms, r.top1), xytext=(6, 4), textcoords="offset points", fontsize=8)
        for runtime, marker in markers.items():
            ax.scatter([], [], marker=marker, color="gray", label=runtime)
        ax.set(xlabel="measured latency per image (ms, median)", ylabel="ImageNet top-1 (%, as published)")
        peak = statistics.median(r.peak_gflops for r in rows if r.batch == batch)
        ax.set_title(f"batch {batch} ({peak:.0f} GFLOP/s GEMM peak in the same run)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="runtime (ring: fastest)", title_fontsize=8)
    fig.suptitle(f"Accuracy vs latency on {info['cpu']}, {info['threads']} threads")
    save_figure(fig, path)

"""Side-by-side speed of MixNet implementations on this machine (``mixnet bench``).

Contenders run interleaved in one process (each round runs every contender once; medians over
rounds): absolute times on shared machines move by tens of
percent, ratios measured this way hold. A second copy of one contender ("A vs A") shows how much of a
ratio is noise. timm and ONNX Runtime are needed here only: ``pip install 'mixnet[bench]'``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixnet.errors import require
from mixnet.factory import create_model
from mixnet.measure.agreement import check_agreement
from mixnet.measure.machine import header
from mixnet.measure.output import read_dataclass_csv
from mixnet.measure.output import write_outputs as write_files
from mixnet.measure.runners import ort_runner, sgd_step_runner, torch_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians
from mixnet.models.archfile import is_arch_file
from mixnet.models.complexity import complexity

INFERENCE_CONTENDERS = (
    "timm eager",
    "timm eager (A/A)",
    "timm eager channels_last",
    "timm ORT",
    "ours eager",
    "ours optimized",
    "ours ORT fp32",
    "ours ORT int8",
)


# What each kind's ratio column divides by.
RATIO_TO = {"inference": "vs timm", "training": "vs timm", "exported": "vs reference"}


@dataclass
class Row:
    """One measured contender at one model and batch size."""

    kind: str
    model: str
    contender: str
    batch: int
    img_size: int
    threads: int
    macs_m: float
    ms_per_batch: float
    images_per_s: float
    vs_timm_eager: float = float("nan")
    max_abs_diff: float = float("nan")


def _need(module: str) -> object:
    return require(module, "bench", "mixnet bench")


def inference_contenders(
    name: str, batch: int, img_size: int, threads: int, workdir: Path, *, int8: bool = True
) -> dict[str, Callable[[], torch.Tensor]]:
    """Every inference contender for one model and batch size, all computing the same function.

    Our model gets timm's (random) weights through :func:`mixnet.io.convert.from_timm`, so every fp32
    contender must give the same logits; :func:`bench_inference` checks that before timing. An
    architecture file (``.json``) has no timm counterpart: its contenders are ours alone, with an A/A pair
    of ours eager. Exports are cached in ``workdir`` per model and resolution.
    """
    _need("onnxruntime")
    from mixnet.deploy.export import to_onnx
    from mixnet.deploy.optimize import optimize_for_inference
    from mixnet.io.convert import from_timm

    # Weights depend on the seed alone (not on the batch size), so the exports cached in ``workdir`` by
    # the first batch size hold the same weights as the models built for the next one.
    torch.manual_seed(0)
    x = torch.randn(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(1))
    out: dict[str, Callable[[], torch.Tensor]] = {}
    if is_arch_file(name):  # an architecture file (e.g. from mixnet search): no timm counterpart
        ours = create_model(name).eval()
        onnx_dir = workdir / f"{Path(name).stem}-{img_size}px"
        out["ours eager (A/A)"] = torch_runner(ours, x)
    else:
        timm = _need("timm")
        ref = timm.create_model(name).eval()
        ref_cl = timm.create_model(name).eval().to(memory_format=torch.channels_last)
        ref_cl.load_state_dict(ref.state_dict())
        ours = create_model(name).eval()
        ours.load_state_dict(from_timm(ref.state_dict()))
        onnx_dir = workdir / f"{name}-{img_size}px"
        timm_onnx = onnx_dir / "timm.onnx"
        if not timm_onnx.exists():
            to_onnx(ref, timm_onnx, img_size=img_size, optimize=False, threads=threads)
        out["timm eager"] = torch_runner(ref, x)
        out["timm eager (A/A)"] = torch_runner(ref, x)
        out["timm eager channels_last"] = torch_runner(ref_cl, x, torch.channels_last)
        out["timm ORT"] = ort_runner(timm_onnx, x, threads)
    ours_onnx, int8_onnx = onnx_dir / "ours.onnx", onnx_dir / "ours.int8.onnx"
    if not ours_onnx.exists():
        to_onnx(ours, ours_onnx, img_size=img_size, optimize=True, threads=threads)
    out["ours eager"] = torch_runner(ours, x)
    out["ours optimized"] = torch_runner(optimize_for_inference(ours, img_size=img_size), x)
    out["ours ORT fp32"] = ort_runner(ours_onnx, x, threads)
    if int8:
        from mixnet.deploy.quantize import quantize_onnx

        if not int8_onnx.exists():
            quantize_onnx(ours_onnx, int8_onnx, calibration=calibration_batches(img_size))
        out["ours ORT int8"] = ort_runner(int8_onnx, x, threads)
    return out


def calibration_batches(img_size: int, n: int = 64) -> list[np.ndarray]:
    """Calibration inputs for the int8 contender: random images (its speed is measured here, not its
    accuracy, which ``mixnet quantize`` reports on real images)."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(8, 3, img_size, img_size, generator=g).numpy() for _ in range(n // 8)]


def bench_inference(
    models: Sequence[str] = ("mixnet_s", "mixnet_m", "mixnet_l"),
    batches: Sequence[int] = (1, 8),
    *,
    img_size: int = 224,
    threads: int = 2,
    rounds: int = 9,
    iters: int = 2,
    int8: bool = True,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> list[Row]:
    """Images/s of every contender in :data:`INFERENCE_CONTENDERS`, interleaved per model and batch."""
    rows: list[Row] = []
    with using_threads(threads), tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        for name in models:
            macs = complexity(name, img_size).macs / 1e6
            for batch in batches:
                if progress:
                    print(f"bench: {name} batch {batch} ...", flush=True)
                contenders = inference_contenders(name, batch, img_size, threads, work, int8=int8)
                base = "ours eager" if is_arch_file(name) else "timm eager"
                diffs = check_agreement(contenders, base)
                medians = interleaved_medians(contenders, rounds=rounds, iters=iters, pause_s=0.05, progress=progress)
                rows += measured_rows("inference", name, batch, img_size, threads, macs, medians, base, diffs)
    return rows


def measured_rows(
    kind: str,
    name: str,
    batch: int,
    img_size: int,
    threads: int,
    macs: float,
    medians: dict[str, float],
    base: str,
    diffs: dict[str, float] | None = None,
) -> list[Row]:
    """One :class:`Row` per contender of one interleaved run (medians in seconds; ratios to ``base``)."""
    diffs = diffs or {}
    return [
        Row(
            kind,
            name,
            c,
            batch,
            img_size,
            threads,
            round(macs, 1),
            s * 1e3,
            batch / s,
            medians[base] / s,
            diffs.get(c, float("nan")),
        )
        for c, s in medians.items()
    ]


TRAINING_CONTENDERS = (
    "timm",
    "timm (A/A)",
    "timm channels_last",
    "ours",
    "ours channels_last",
    "ours fused channels_last",
)


def bench_training(
    models: Sequence[str] = ("mixnet_s",),
    settings: Sequence[tuple[int, int]] = ((32, 224), (128, 64)),
    *,
    threads: int = 2,
    rounds: int = 5,
    progress: bool = True,
) -> list[Row]:
    """Training images/s (forward + backward + SGD step) of ours vs timm, per (batch, img_size).

    Contenders: :data:`TRAINING_CONTENDERS`; "ours fused" composes each MixConv's big kernel from the
    group kernels at every step (``fuse_mixconv=True``), so its gradients are those of the split form.
    """
    timm = _need("timm")
    rows: list[Row] = []
    cl = torch.channels_last
    with using_threads(threads):
        for name in models:
            for batch, size in settings:
                if progress:
                    print(f"bench: training {name} batch {batch} at {size}px ...", flush=True)
                torch.manual_seed(0)
                x = torch.randn(batch, 3, size, size)
                y = torch.randint(0, 1000, (batch,))
                nets = {
                    "timm": (timm.create_model(name).train(), None),
                    "timm (A/A)": (timm.create_model(name).train(), None),
                    "timm channels_last": (timm.create_model(name).train().to(memory_format=cl), cl),
                    "ours": (create_model(name).train(), None),
                    "ours channels_last": (create_model(name).train().to(memory_format=cl), cl),
                    "ours fused channels_last": (
                        create_model(name, fuse_mixconv=True).train().to(memory_format=cl),
                        cl,
                    ),
                }
                steps = {k: sgd_step_runner(m, x, y, fmt) for k, (m, fmt) in nets.items()}
                medians = interleaved_medians(steps, rounds=rounds, iters=1, warmup=1, progress=progress)
                macs = complexity(name, size).macs / 1e6
                rows += measured_rows("training", name, batch, size, threads, macs, medians, "timm")
    return rows


def read_rows(path: str | Path) -> list[Row]:
    """Reads the rows of a ``bench.csv`` back (to redraw the table or plot without measuring again)."""
    return read_dataclass_csv(path, Row)


def write_outputs(rows: list[Row], out_dir: str | Path, info: dict[str, str], command: str) -> dict[str, Path]:
    """Writes ``bench.csv``, ``bench.md`` and (for inference rows) ``bench.png``; returns their paths."""
    draw = (lambda path: plot(rows, path, info)) if any(r.kind == "inference" for r in rows) else None
    return write_files(out_dir, "bench", rows, Row, format_markdown(rows, info, command), draw)


def format_markdown(rows: list[Row], info: dict[str, str], command: str) -> str:
    """Markdown: the machine, the command, and one table per kind (images/s and ratio to timm)."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {header(info)}",
        "",
        f"Command: `{command}`",
        "",
        "Medians of interleaved rounds (order rotated each round); ratio = contender images/s over timm eager "
        "(NCHW) in the same run. Every contender gets the same NCHW input (a conversion to channels_last is "
        "timed) and, for inference, the same weights: max abs diff is its logit difference to timm eager "
        "(fp32 contenders must agree within 1e-3 times its largest absolute logit, at least 1, or the run "
        "stops). The A/A row is timm measured twice: its distance from 1.00 is the noise."
        if any(r.kind != "exported" for r in rows)
        else "Medians of interleaved rounds (order rotated each round); ratio = contender images/s over the "
        "PyTorch model in eager mode (without --weights: over the first fp32 file) in the same run, on the same "
        "input. Max abs diff is each contender's output difference to that reference (fp32 files must agree "
        "within 1e-3 times the reference's largest absolute output, at least 1, as in the export check, or the "
        "run stops; int8 files' difference is reported).",
    ]
    for kind in dict.fromkeys(r.kind for r in rows):
        lines += [
            "",
            f"### {kind}",
            "",
            f"| model | batch | px | contender | images/s | ms/batch | {RATIO_TO[kind]} | max abs diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r.kind == kind):
            diff = "-" if math.isnan(r.max_abs_diff) else f"{r.max_abs_diff:.1e}"
            lines.append(
                f"| {r.model} | {r.batch} | {r.img_size} | {r.contender} | {r.images_per_s:.1f} | "
                f"{r.ms_per_batch:.1f} | {r.vs_timm_eager:.2f}x | {diff} |"
            )
    return "\n".join(lines) + "\n"


def plot(rows: list[Row], path: Path, info: dict[str, str]) -> None:
    """Images/s against MACs, one line per contender, one panel per batch size."""
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()

    inf = [r for r in rows if r.kind == "inference" and "(A/A)" not in r.contender]  # the A/A row is in the table
    batches = sorted({r.batch for r in inf})
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 4.5), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        for contender in dict.fromkeys(r.contender for r in inf):
            pts = sorted(
                (r.macs_m, r.images_per_s, r.model) for r in inf if r.batch == batch and r.contender == contender
            )
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=contender)
        for macs, _, model in sorted({(r.macs_m, 0, r.model) for r in inf if r.batch == batch}):
            ax.annotate(model, (macs, 0), xytext=(0, 4), textcoords="offset points", fontsize=8, ha="center")
        ax.set(xlabel=f"MACs at {inf[0].img_size}px (M)", ylabel="images/s", title=f"batch {batch}", ylim=(0, None))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"MixNet inference on {info['cpu']}, {info['threads']} threads")
    save_figure(fig, path)

"""Side-by-side speed of MixNet implementations on this machine (``mixnet bench``).

Contenders run interleaved in one process (each round runs every contender once; medians over
rounds): absolute times on shared machines move by tens of
percent, ratios measured this way hold. A second copy of one contender ("A vs A") shows how much of a
ratio is noise. timm and ONNX Runtime are needed here only: ``pip install 'mixnet[bench]'``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixnet.errors import require
from mixnet.factory import create_model
from mixnet.models.archfile import is_arch_file
from mixnet.models.complexity import complexity
from mixnet.timing import interleaved_medians

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


def machine_info(threads: int) -> dict[str, str]:
    """CPU model, core count, threads used and library versions, for the output header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "threads": str(threads), "torch": torch.__version__}
    for dist in ("timm", "onnxruntime", "openvino"):
        try:  # the installed version, without loading the package (OpenVINO's native runtime is heavy)
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _need(module: str) -> object:
    return require(module, "bench", "mixnet bench")


def torch_runner(model: nn.Module, x: torch.Tensor, memory_format: torch.memory_format | None = None):
    """One forward pass on the shared NCHW input; a memory-format change is part of the timed work."""

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x if memory_format is None else x.contiguous(memory_format=memory_format))

    return run


def ort_runner(path: Path, x: torch.Tensor, threads: int) -> Callable[[], object]:
    from mixnet.deploy.export import ort_session

    session = ort_session(path, threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: torch.from_numpy(session.run(None, feed)[0])


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
            quantize_onnx(ours_onnx, int8_onnx, calibration=_calibration_batches(img_size))
        out["ours ORT int8"] = ort_runner(int8_onnx, x, threads)
    return out


def _calibration_batches(img_size: int, n: int = 64) -> list[np.ndarray]:
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
    torch.set_num_threads(threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
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
                rows += _rows("inference", name, batch, img_size, threads, macs, medians, base, diffs)
    return rows


def check_agreement(contenders: dict[str, Callable[[], torch.Tensor]], base: str, tol: float = 1e-3) -> dict:
    """Max abs logit difference of each contender to ``base``; fp32 contenders must agree within ``tol``.

    A benchmark of contenders that compute different things would compare nothing: this runs each
    once and raises if an fp32 one is off (int8 is reported, not checked).
    """
    ref = contenders[base]()
    diffs = {name: (fn() - ref).abs().max().item() for name, fn in contenders.items()}
    off = {n: d for n, d in diffs.items() if d > tol and "int8" not in n}
    if off:
        raise RuntimeError(f"contenders disagree with {base!r} by more than {tol}: {off}")
    return diffs


def _rows(kind, name, batch, img_size, threads, macs, medians: dict, base: str, diffs: dict | None = None):
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


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool) -> Callable[[], None]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x.contiguous(memory_format=torch.channels_last) if channels_last else x), y).backward()
        opt.step()

    return step


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
    torch.set_num_threads(threads)
    rows: list[Row] = []
    cl = torch.channels_last
    for name in models:
        for batch, size in settings:
            if progress:
                print(f"bench: training {name} batch {batch} at {size}px ...", flush=True)
            torch.manual_seed(0)
            x = torch.randn(batch, 3, size, size)
            y = torch.randint(0, 1000, (batch,))
            nets = {
                "timm": (timm.create_model(name).train(), False),
                "timm (A/A)": (timm.create_model(name).train(), False),
                "timm channels_last": (timm.create_model(name).train().to(memory_format=cl), True),
                "ours": (create_model(name).train(), False),
                "ours channels_last": (create_model(name).train().to(memory_format=cl), True),
                "ours fused channels_last": (create_model(name, fuse_mixconv=True).train().to(memory_format=cl), True),
            }
            steps = {k: _train_step(m, x, y, c) for k, (m, c) in nets.items()}
            medians = interleaved_medians(steps, rounds=rounds, iters=1, warmup=1, progress=progress)
            macs = complexity(name, size).macs / 1e6
            rows += _rows("training", name, batch, size, threads, macs, medians, "timm")
    return rows


def read_csv(path: str | Path, cls: type) -> list:
    """Rows of dataclass ``cls`` read back from a CSV that :func:`write_csv` wrote."""
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    conv = {"int": int, "float": float, "str": str}
    with open(path, newline="") as f:
        return [cls(**{k: conv[str(types[k])](v) for k, v in rec.items()}) for rec in csv.DictReader(f)]


def write_csv(path: Path, rows: Sequence, cls: type) -> None:
    """Dataclass rows as CSV, one column per field."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fld.name for fld in dataclasses.fields(cls)])
        w.writeheader()
        w.writerows(dataclasses.asdict(r) for r in rows)


def read_rows(path: str | Path) -> list[Row]:
    """Reads the rows of a ``bench.csv`` back (to redraw the table or plot without measuring again)."""
    return read_csv(path, Row)


def write_outputs(rows: list[Row], out_dir: str | Path, info: dict[str, str], command: str) -> dict[str, Path]:
    """Writes ``bench.csv``, ``bench.md`` and (for inference rows) ``bench.png``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "bench.csv", "md": out / "bench.md"}
    write_csv(paths["csv"], rows, Row)
    paths["md"].write_text(format_markdown(rows, info, command))
    if any(r.kind == "inference" for r in rows):
        paths["png"] = out / "bench.png"
        plot(rows, paths["png"], info)
    return paths


def format_markdown(rows: list[Row], info: dict[str, str], command: str) -> str:
    """Markdown: the machine, the command, and one table per kind (images/s and ratio to timm)."""
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {info['cpu']} ({info['cores']} cores, {info['threads']} threads); "
        + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("cpu", "cores", "threads")),
        "",
        f"Command: `{command}`",
        "",
        "Medians of interleaved rounds (order rotated each round); ratio = contender images/s over timm eager "
        "(NCHW) in the same run. Every contender gets the same NCHW input (a conversion to channels_last is "
        "timed) and, for inference, the same weights: max abs diff is its logit difference to timm eager "
        "(fp32 contenders must agree within 1e-3 or the run stops). The A/A row is timm measured twice: "
        "its distance from 1.00 is the noise.",
    ]
    for kind in dict.fromkeys(r.kind for r in rows):
        lines += [
            "",
            f"### {kind}",
            "",
            "| model | batch | px | contender | images/s | ms/batch | vs timm | max abs diff |",
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

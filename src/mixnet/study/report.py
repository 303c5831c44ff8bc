"""A study's summary, plots and markdown report, with the paper's curves beside ours.

Curve families: for each model, ``single`` (one kernel size in every depthwise conv, x = its size) and
``MixConv`` (groups 3, 5, ..., x = the largest), each split further by channel split and dilation when
the study has such variants. The plain 3x3 model is the first point of every family of its model, as in
the paper's figures. The trend statements compare means over seeds and call a difference real only when
it exceeds twice its standard error (so with one seed nothing is called real).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mixnet.models.configs import KernelSpec
from mixnet.study.paper import PAPER_CURVES, PaperCurve


@dataclass(frozen=True)
class Point:
    """One variant's summary as a plot point."""

    kernels: str
    x: int
    top1: float
    std: float
    seeds: int
    macs_m: float
    macs_imagenet_m: float


def family_of(kernels: str) -> tuple[str, str, bool]:
    """``(kind, split, dilated)`` of a kernel spec: kind ``single`` or ``MixConv``."""
    spec = KernelSpec.parse(kernels)
    kind = "single" if len(spec.kernels) == 1 else "MixConv"
    return kind, spec.split, spec.dilated and max(spec.kernels) > 3


def family_label(model: str, family: tuple[str, str, bool]) -> str:
    """A curve's legend text, e.g. ``mobilenet_v2 MixConv (exponential split, dilated)``."""
    kind, split, dilated = family
    extras = [f"{split} split"] if kind == "MixConv" and split != "equal" else []
    extras += ["dilated"] if dilated else []
    return f"{model} {kind}" + (f" ({', '.join(extras)})" if extras else "")


def curves(summary: Sequence[dict]) -> dict[tuple[str, tuple[str, str, bool]], list[Point]]:
    """(model, family) -> points sorted by largest kernel; the plain k3 model starts every family of its model."""
    out: dict[tuple[str, tuple[str, str, bool]], list[Point]] = {}
    plain3: dict[str, Point] = {}
    for row in summary:
        if not row["seeds"]:
            continue
        spec = KernelSpec.parse(row["kernels"])
        point = Point(
            row["kernels"],
            max(spec.kernels),
            row["top1_mean"],
            row["top1_std"],
            row["seeds"],
            row["macs_m"],
            row["macs_imagenet_m"],
        )
        if spec == KernelSpec((3,)):
            plain3[row["model"]] = point
            out.setdefault((row["model"], ("single", "equal", False)), []).append(point)
            continue
        out.setdefault((row["model"], family_of(row["kernels"])), []).append(point)
    for (model, _), points in out.items():
        if model in plain3 and plain3[model] not in points:
            points.append(plain3[model])
    return {k: sorted(v, key=lambda p: p.x) for k, v in out.items() if len(v) > 0}


def _se(p: Point) -> float:
    return p.std / math.sqrt(p.seeds) if p.seeds > 1 else math.inf


def compare(a: Point, b: Point) -> tuple[float, bool]:
    """``(b - a, real)``: the top-1 difference and whether it exceeds twice its standard error."""
    diff = b.top1 - a.top1
    return diff, abs(diff) > 2 * math.hypot(_se(a), _se(b))


def _pt(p: Point) -> str:
    return f"{p.kernels} {p.top1:.2f} ± {p.std:.2f}%"


def trend_lines(summary: Sequence[dict]) -> list[str]:
    """Plain statements, with the numbers, on whether the paper's trends appear in ``summary``."""
    lines = []
    fams = curves(summary)
    by_key = {(row["model"], row["kernels"]): row for row in summary}
    for (model, family), points in fams.items():
        if family != ("single", "equal", False) or len(points) < 3:
            continue
        best = max(points, key=lambda p: p.top1)
        first, last = points[0], points[-1]
        rise, rise_real = compare(first, best)
        fall, fall_real = compare(last, best)
        shape = (
            "appears"
            if rise_real and fall_real and best not in (first, last)
            else "partly appears"
            if (rise_real and best is not first) or (fall_real and best is not last)
            else "does not appear (the differences are within the seed spread)"
            if not (rise_real or fall_real)
            else "does not appear"
        )
        lines.append(
            f"**{model}, single kernel size** (paper: better up to about 7x7-9x9, then worse): {shape}. "
            f"Best {_pt(best)}; {_pt(first)} ({rise:+.2f} to the best); {_pt(last)} ({-fall:+.2f} from the best)."
        )
    for (model, family), points in fams.items():
        if family[0] != "MixConv":
            continue
        wins, real_wins, real_losses, cheaper = [], 0, 0, 0
        for p in points:
            if p.x == 3 or KernelSpec.parse(p.kernels).kernels == (3,):
                continue
            single = by_key.get((model, f"k{p.x}" + ("-dil" if family[2] else "")))
            if single is None or not single["seeds"]:
                continue
            s = Point(single["kernels"], p.x, single["top1_mean"], single["top1_std"], single["seeds"], 0, 0)
            diff, real = compare(s, p)
            real_wins += real and diff > 0
            real_losses += real and diff < 0
            cheaper += p.macs_m < single["macs_m"]
            wins.append(f"{p.kernels} vs k{p.x}: {diff:+.2f}")
        if wins:
            verdict = (
                "appears"
                if real_wins and not real_losses
                else "is contradicted"
                if real_losses and not real_wins
                else "is mixed"
                if real_wins
                else "is not resolved (within the seed spread)"
            )
            lines.append(
                f"**{family_label(model, family)} vs the single kernel of the same largest size** (paper: MixConv "
                f"more accurate at fewer MACs): {verdict}; {real_wins} real win(s), {real_losses} real loss(es), "
                f"fewer MACs in {cheaper} of {len(wins)}. " + "; ".join(wins) + "."
            )
        if len(points) >= 3:
            diff, real = compare(points[0], points[-1])
            best = max(points, key=lambda p: p.top1)
            lines.append(
                f"**{family_label(model, family)}, more groups** (paper: keeps gaining up to 5-6 groups): "
                f"{_pt(points[0])} -> {_pt(points[-1])} ({diff:+.2f}, {'real' if real else 'within the seed spread'}); "
                f"best {_pt(best)}."
            )
    lines += _pair_lines(summary, "-exp", "exponential vs equal split", "paper: exponential better on V1, equal on V2")
    lines += _pair_lines(summary, "-dil", "dilated vs plain kernels", "paper: dilated falls behind for large kernels")
    return lines


def _pair_lines(summary: Sequence[dict], suffix: str, what: str, paper: str) -> list[str]:
    by_key = {(r["model"], r["kernels"]): r for r in summary if r["seeds"]}
    diffs: dict[str, list[str]] = {}
    for (model, kernels), row in by_key.items():
        if suffix not in kernels:
            continue
        base = by_key.get((model, kernels.replace(suffix, "")))
        if base is None:
            continue
        a = Point(base["kernels"], 0, base["top1_mean"], base["top1_std"], base["seeds"], 0, 0)
        b = Point(kernels, 0, row["top1_mean"], row["top1_std"], row["seeds"], 0, 0)
        diff, real = compare(a, b)
        diffs.setdefault(model, []).append(f"{kernels}: {diff:+.2f}{' (real)' if real else ''}")
    return [f"**{model}, {what}** ({paper}): " + "; ".join(d) + "." for model, d in diffs.items()]


def paper_points(curve: PaperCurve, macs_of) -> list[tuple[int, float, float]]:
    """``(largest kernel, top-1, MACs at 224 px)`` of a paper curve; ``macs_of(model, kernels)`` in millions."""
    out = []
    for kernels, top1 in curve.top1.items():
        out.append((max(KernelSpec.parse(kernels).kernels), top1, macs_of(curve.model, kernels)))
    return sorted(out)


def plot(summary: Sequence[dict], paper: Sequence[str], macs_of, out_dir, title: str) -> list:
    """Writes ``top1_vs_kernel.png`` and ``top1_vs_macs.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    fams = curves(summary)
    paths = []
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (model, family), points in fams.items():
        ax.errorbar(
            [p.x for p in points],
            [p.top1 for p in points],
            yerr=[p.std for p in points],
            marker="o",
            capsize=3,
            label=f"{family_label(model, family)} (ours)",
        )
    ax.set_xlabel("largest depthwise kernel size")
    ax.set_ylabel("top-1 (%), this study: mean ± std over seeds")
    ax.set_title(title)
    if paper:
        twin = ax.twinx()
        for name in paper:
            c = PAPER_CURVES[name]
            pts = paper_points(c, macs_of)
            twin.plot([p[0] for p in pts], [p[1] for p in pts], "--", marker="s", alpha=0.6, label=f"paper {name}")
        twin.set_ylabel("paper: ImageNet top-1 (%), dashed")
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower center")
    else:
        ax.legend(fontsize=7)
    xs = {p.x for pts in fams.values() for p in pts}
    xs |= {max(KernelSpec.parse(k).kernels) for name in paper for k in PAPER_CURVES[name].top1}
    ax.set_xticks(sorted(xs))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "top1_vs_kernel.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    ncols = 2 if paper else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.6), squeeze=False)
    ax = axes[0][0]
    for (model, family), points in fams.items():
        ax.errorbar(
            [p.macs_m for p in points],
            [p.top1 for p in points],
            yerr=[p.std for p in points],
            marker="o",
            capsize=3,
            label=family_label(model, family),
        )
        for p in points:
            ax.annotate(p.kernels, (p.macs_m, p.top1), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("MACs (M) at this study's image size and classes")
    ax.set_ylabel("top-1 (%), mean ± std over seeds")
    ax.set_title(f"{title}: ours")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if paper:
        ax = axes[0][1]
        for name in paper:
            pts = sorted(paper_points(PAPER_CURVES[name], macs_of), key=lambda p: p[2])
            ax.plot([p[2] for p in pts], [p[1] for p in pts], "--", marker="s", label=f"paper {name}")
        ax.set_xlabel("MACs (M) at 224 px, 1000 classes (computed here)")
        ax.set_ylabel("ImageNet top-1 (%), read off the paper's figures")
        ax.set_title("the paper")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(out_dir / "top1_vs_macs.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def _fmt_num(v, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def markdown(study, summary: Sequence[dict], failures: Sequence[dict], latency: dict | None, command: str) -> str:
    """The study's report as markdown (the plots are linked, not embedded)."""
    lines = [f"# Study `{study.name}`", ""]
    if study.description:
        lines += [study.description, ""]
    train = ", ".join(f"{k}={v}" for k, v in sorted(study.train.items())) or "none"
    lines += [
        f"Reproduce: `{command}`" if command else "",
        "",
        "## Setup",
        "",
        f"- models: {', '.join(study.models)}" + (f" at width {study.width_mult}" if study.width_mult else ""),
        f"- data: `{study.data}` at {study.img_size}x{study.img_size} px; seeds {', '.join(map(str, study.seeds))}",
        f"- recipe: preset `{study.preset}` with {train}",
        "- top-1: held-out top-1 after the last epoch (EMA weights when the recipe keeps an EMA)",
    ]
    if latency:
        s = latency["settings"]
        lines.append(
            f"- latency: median ms per forward pass, batch {s['batch_size']}, {s['threads']} thread(s), "
            f"{s['device']}, inference rewrite (BN folded), interleaved; {latency.get('machine', {}).get('cpu', '')}"
        )
    lines += [
        "- MACs: conv, linear, BN, activations, pools and residual adds (`mixnet.complexity`), at this study's "
        "image size and classes, and at 224 px with 1000 classes (the paper's setting)",
        "",
        "## Results",
        "",
        "| variant | params | MACs (M) | MACs at 224 px (M) | latency (ms) | top-1 (%) mean ± std | per seed "
        "| failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        per_seed = " / ".join(f"{v:.2f}" for v in r["top1_runs"]) or "-"
        top1 = f"{r['top1_mean']:.2f} ± {r['top1_std']:.2f}" if r["seeds"] else "-"
        lines.append(
            f"| {r['key']} | {_fmt_num(r['params'], 0)} | {_fmt_num(r['macs_m'], 2)} | "
            f"{_fmt_num(r['macs_imagenet_m'], 1)} | {_fmt_num(r['latency_ms'], 3)} | {top1} | {per_seed} | "
            f"{r['failed'] or ''} |"
        )
    lines += ["", "## Do the paper's trends appear here?", ""]
    trends = trend_lines(summary)
    lines += [f"- {t}" for t in trends] or ["- Not enough variants for a trend (need three or more of a family)."]
    lines += [
        "",
        "A difference is called real when it exceeds twice its standard error over seeds.",
        "",
        "## Plots",
        "",
        "![top-1 vs kernel size](top1_vs_kernel.png)",
        "",
        "![top-1 vs MACs](top1_vs_macs.png)",
        "",
    ]
    if study.paper:
        lines += [
            "## The paper's values (ImageNet top-1, read off its figures, about ±0.1)",
            "",
            "| curve | figure | model | values |",
            "|---|---|---|---|",
        ]
        for name in study.paper:
            c = PAPER_CURVES[name]
            values = ", ".join(f"{k}: {v}" for k, v in c.top1.items())
            lines.append(f"| {name} | {c.figure} | {c.model} | {values} |")
        lines.append("")
    if failures:
        lines += ["## Failed runs", ""]
        lines += [f"- {f['run']}: {f.get('error', '')}" for f in failures]
        lines.append("")
    lines += [
        "Files: `results.csv` (one row per run), `summary.csv` (one row per variant), `results*.jsonl` (raw rows), "
        "`latency.json`, `runs/<run>/` (each run's metrics, checkpoint and model file).",
        "",
    ]
    return "\n".join(lines)

"""A study's summary, plots and markdown report, with the paper's curves beside ours.

Curve families: for each model, ``single`` (one kernel size in every depthwise conv, x = its size) and
``MixConv`` (groups 3, 5, ..., x = the largest), each split further by channel split and dilation when
the study has such variants. The plain 3x3 model is the first point of every family of its model, as in
the paper's figures. The trend statements rest on contrasts that follow from the study's variants alone
(adjacent kernel sizes, each MixConv against the single kernel of its largest size, fewest against most
groups, exponential against equal split, dilated against plain), each a paired comparison by seed
(:mod:`mixnet.experiment.stats`), Holm-corrected over all the contrasts of the report. With one seed
no significance can be claimed, and the report says so.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from mixnet.experiment.curves import slope_lines
from mixnet.experiment.stats import Paired, holm_correct, paired
from mixnet.models.configs import KernelSpec
from mixnet.study.contrasts import ALPHA, contrast_lines
from mixnet.study.paper import PAPER_CURVES, PaperCurve


@dataclass(frozen=True)
class Point:
    """One variant's summary as a plot point (``by_seed``: top-1 per seed, for paired comparisons)."""

    kernels: str
    x: int
    top1: float
    std: float
    seeds: int
    macs_m: float
    macs_imagenet_m: float
    by_seed: dict = field(default_factory=dict, compare=False, hash=False)


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


def _point(row: dict, x: int = 0) -> Point:
    by_seed = row.get("top1_by_seed") or {}
    return Point(
        row["kernels"],
        x,
        row["top1_mean"],
        row["top1_std"],
        row["seeds"],
        row.get("macs_m"),
        row.get("macs_imagenet_m"),
        {int(k): v for k, v in by_seed.items()},
    )


def curves(summary: Sequence[dict]) -> dict[tuple[str, tuple[str, str, bool]], list[Point]]:
    """(model, family) -> points sorted by largest kernel; the plain k3 model starts every family of its model."""
    out: dict[tuple[str, tuple[str, str, bool]], list[Point]] = {}
    plain3: dict[str, Point] = {}
    for row in summary:
        if not row["seeds"]:
            continue
        spec = KernelSpec.parse(row["kernels"])
        point = _point(row, max(spec.kernels))
        if spec == KernelSpec((3,)):
            plain3[row["model"]] = point
            out.setdefault((row["model"], ("single", "equal", False)), []).append(point)
            continue
        out.setdefault((row["model"], family_of(row["kernels"])), []).append(point)
    for (model, _), points in out.items():
        if model in plain3 and plain3[model] not in points:
            points.append(plain3[model])
    return {k: sorted(v, key=lambda p: p.x) for k, v in out.items() if len(v) > 0}


def compare(a: Point, b: Point) -> Paired:
    """``b - a`` paired by seed (mean difference, CI, p)."""
    return paired(a.by_seed, b.by_seed, label=f"{b.kernels} - {a.kernels}")


def _pt(p: Point) -> str:
    return f"{p.kernels} {p.top1:.2f}" + (f" (SD {p.std:.2f})" if p.seeds > 1 else " (one seed)")


@dataclass
class _Trend:
    """A statement to be made once every contrast of the report is corrected."""

    head: str
    contrasts: list[Paired]
    say: object  # (corrected contrasts) -> the statement's text after the head


def _steps(points: list[Point]) -> list[Paired]:
    return [compare(a, b) for a, b in itertools.pairwise(points)]


def _single_shape(steps: list[Paired]) -> str:
    rises = [i for i, c in enumerate(steps) if c.resolved(ALPHA) and c.mean > 0]
    falls = [i for i, c in enumerate(steps) if c.resolved(ALPHA) and c.mean < 0]
    if not rises and not falls:
        return "not resolved (no step is significant after Holm's correction)"
    if rises and falls and max(rises) < min(falls):
        return "appears (resolved rise, then resolved fall)"
    if rises and not falls:
        return "partly appears (a resolved rise, no resolved fall)"
    return "does not appear (a resolved fall before or without a rise)"


def _mixconv_verdict(model: str, family, contrasts: list[Paired], macs: list[bool]):
    def say(cs: list[Paired]) -> str:
        wins = sum(c.resolved(ALPHA) and c.mean > 0 for c in cs)
        losses = sum(c.resolved(ALPHA) and c.mean < 0 for c in cs)
        verdict = (
            "appears"
            if wins and not losses
            else "is contradicted"
            if losses and not wins
            else "is mixed"
            if wins
            else "is not resolved"
        )
        return (
            f"{verdict}; {wins} resolved win(s), {losses} resolved loss(es), fewer MACs in {sum(macs)} of {len(cs)}. "
            + "; ".join(c.describe() for c in cs)
            + "."
        )

    head = (
        f"**{family_label(model, family)} vs the single kernel of the same largest size** (paper: MixConv "
        "more accurate at fewer MACs): "
    )
    return _Trend(head, contrasts, say)


def _trends(summary: Sequence[dict]) -> list[_Trend]:
    trends = []
    fams = curves(summary)
    by_key = {(row["model"], row["kernels"]): row for row in summary}
    for (model, family), points in fams.items():
        if family != ("single", "equal", False) or len(points) < 3:
            continue
        trends.append(
            _Trend(
                f"**{model}, single kernel size** (paper: better up to about 7x7-9x9, then worse): ",
                _steps(points),
                lambda cs: f"{_single_shape(cs)}. " + "; ".join(c.describe() for c in cs) + ".",
            )
        )
    for (model, family), points in fams.items():
        if family[0] != "MixConv":
            continue
        contrasts, cheaper = [], []
        for p in points:
            if p.x == 3 or KernelSpec.parse(p.kernels).kernels == (3,):
                continue
            single = by_key.get((model, f"k{p.x}" + ("-dil" if family[2] else "")))
            if single is None or not single["seeds"]:
                continue
            contrasts.append(compare(_point(single, p.x), p))
            cheaper.append(p.macs_m < single["macs_m"])
        if contrasts:
            trends.append(_mixconv_verdict(model, family, contrasts, cheaper))
        if len(points) >= 3:
            trends.append(
                _Trend(
                    f"**{family_label(model, family)}, more groups** (paper: keeps gaining up to 5-6 groups): ",
                    [compare(points[0], points[-1])],
                    lambda cs, a=points[0], b=points[-1]: (
                        f"{_pt(a)} -> {_pt(b)}: {cs[0].describe()}, "
                        f"{'resolved' if cs[0].resolved(ALPHA) else 'not resolved'}."
                    ),
                )
            )
    trends += _pair_trends(
        summary, "-exp", "exponential vs equal split", "paper: exponential better on V1, equal on V2"
    )
    trends += _pair_trends(summary, "-dil", "dilated vs plain kernels", "paper: dilated falls behind for large kernels")
    return trends


def _pair_trends(summary: Sequence[dict], suffix: str, what: str, paper: str) -> list[_Trend]:
    by_key = {(r["model"], r["kernels"]): r for r in summary if r["seeds"]}
    contrasts: dict[str, list[Paired]] = {}
    for (model, kernels), row in by_key.items():
        if suffix not in kernels:
            continue
        base = by_key.get((model, kernels.replace(suffix, "")))
        if base is not None:
            contrasts.setdefault(model, []).append(compare(_point(base), _point(row)))

    def say(cs: list[Paired]) -> str:
        return "; ".join(c.describe() + (" (resolved)" if c.resolved(ALPHA) else "") for c in cs) + "."

    return [_Trend(f"**{model}, {what}** ({paper}): ", cs, say) for model, cs in contrasts.items()]


def trend_lines(summary: Sequence[dict]) -> list[str]:
    """Plain statements, with the numbers, on whether the paper's trends appear in ``summary``."""
    trends = _trends(summary)
    corrected = iter(holm_correct([c for t in trends for c in t.contrasts]))
    return [t.head + t.say([next(corrected) for _ in t.contrasts]) for t in trends]


def contrast_count(summary: Sequence[dict]) -> int:
    """How many contrasts the trend statements correct over."""
    return sum(len(t.contrasts) for t in _trends(summary))


def _sd(p: Point) -> float:
    """The error bar of a point: the SD over seeds (none with one seed)."""
    return p.std if p.seeds > 1 else 0.0


def _curve(ax, points: list[Point], x: str, label: str) -> None:
    """One family's mean top-1 against ``x`` (a Point field), error bars the SD over seeds."""
    ys = [p.top1 for p in points]
    ax.errorbar([getattr(p, x) for p in points], ys, yerr=[_sd(p) for p in points], marker="o", capsize=3, label=label)


def paper_points(curve: PaperCurve, macs_of) -> list[tuple[int, float, float]]:
    """``(largest kernel, top-1, MACs at 224 px)`` of a paper curve; ``macs_of(model, kernels)`` in millions."""
    out = []
    for kernels, top1 in curve.top1.items():
        out.append((max(KernelSpec.parse(kernels).kernels), top1, macs_of(curve.model, kernels)))
    return sorted(out)


def plot(summary: Sequence[dict], paper: Sequence[str], macs_of, out_dir, title: str) -> list:
    """Writes ``top1_vs_kernel.png`` and ``top1_vs_macs.png``; returns their paths."""
    from pathlib import Path

    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()
    out_dir = Path(out_dir)
    fams = curves(summary)
    paths = []
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (model, family), points in fams.items():
        _curve(ax, points, "x", f"{family_label(model, family)} (ours)")
    ax.set_xlabel("largest depthwise kernel size")
    ax.set_ylabel("top-1 (%), this study: mean, error bars ± SD over seeds")
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
    paths.append(save_figure(fig, out_dir / "top1_vs_kernel.png"))

    ncols = 2 if paper else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.6), squeeze=False)
    ax = axes[0][0]
    for (model, family), points in fams.items():
        _curve(ax, points, "macs_m", family_label(model, family))
        for p in points:
            ax.annotate(p.kernels, (p.macs_m, p.top1), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("MACs (M) at this study's image size and classes")
    ax.set_ylabel("top-1 (%), mean, error bars ± SD over seeds")
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
    paths.append(save_figure(fig, out_dir / "top1_vs_macs.png"))
    return paths


def _fmt_num(v, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.{digits}f}"


def _trend_section(study, summary: Sequence[dict]) -> list[str]:
    """Trend statements on contrasts derived from the variants, for a study that fixes no contrasts itself."""
    lines = ["## Do the paper's trends appear here?", ""]
    trends = trend_lines(summary)
    lines += [f"- {t}" for t in trends] or ["- Not enough variants for a trend (need three or more of a family)."]
    seeds = len(study.seeds)
    lines += [
        "",
        (
            "One seed: no significance can be claimed; the differences are single runs."
            if seeds < 2
            else f"Each contrast pairs the two variants' runs of the same seed: the mean per-seed difference, its "
            f"95% CI (Student's t, {seeds - 1} degrees of freedom with {seeds} seeds) and two-sided p, "
            f"Holm-corrected over the {contrast_count(summary)} contrasts above; resolved: corrected p < {ALPHA}. "
            "± in the table is the SD over seeds."
        ),
        "",
    ]
    return lines


def markdown(
    study,
    summary: Sequence[dict],
    failures: Sequence[dict],
    latency: dict | None,
    command: str,
    runs: Sequence[dict] = (),
) -> str:
    """The study's report as markdown (the plots are linked, not embedded); ``runs``: the results rows, whose
    learning curves give the convergence section."""
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
        "| variant | params | MACs (M) | MACs at 224 px (M) | latency (ms) | top-1 (%) mean ± SD | per seed | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        per_seed = " / ".join(f"{v:.2f}" for v in r["top1_runs"]) or "-"
        top1 = (
            "-"
            if not r["seeds"]
            else f"{r['top1_mean']:.2f}" + (f" ± {r['top1_std']:.2f}" if r["seeds"] > 1 else " (one seed)")
        )
        lines.append(
            f"| {r['key']} | {_fmt_num(r['params'], 0)} | {_fmt_num(r['macs_m'], 2)} | "
            f"{_fmt_num(r['macs_imagenet_m'], 1)} | {_fmt_num(r['latency_ms'], 3)} | {top1} | {per_seed} | "
            f"{r['failed'] or ''} |"
        )
    lines.append("")
    if study.contrasts:
        lines += contrast_lines(study, summary)
    else:
        lines += _trend_section(study, summary)
    lines += slope_lines(runs, [v.key for v in study.architectures()])
    lines += [
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

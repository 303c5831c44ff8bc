"""The search's report: the Pareto plot (top-1 vs measured latency) and whether the search won.

The found net is compared with each other retrained net paired by seed (the same seed gives every net
the same data split and order): mean difference, 95% CI and p, Holm-corrected over the comparisons
reported (:mod:`mixnet.experiment.stats`). With one seed no significance can be claimed.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from mixnet.experiment.curves import plot_learning_curves, slope_lines
from mixnet.experiment.folder import read_record
from mixnet.experiment.rows import read_jsonl, read_runs, write_text
from mixnet.experiment.stats import Paired, holm_correct, paired
from mixnet.search.config import upgrade_record
from mixnet.search.halving import HALVING, halving_lines
from mixnet.search.ranking import RANKING, ranking_lines

ALPHA = 0.05
# What a search folder holds once the retraining is done (the report is written from these).
FINISHED = ("search_summary.json", "final_latency.json", "matched_width.json", "retrain.jsonl")


# The ranking check's baselines, retrained beside the found net when the check ran.
BASELINES = ("random_median", "macs_pick")


def _by_seed(rows: dict[str, dict], net: str) -> dict[int, float]:
    """Retrained top-1 of ``net`` per seed (finished runs only)."""
    return {r["seed"]: r["top1"] for r in rows.values() if r["net"] == net and r["status"] == "ok"}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def verdict(c: Paired) -> str:
    """Whether the contender won, in words, with the paired difference, its CI and p."""
    if c.n == 0:
        return "not measured"
    if c.n == 1:
        return c.describe()
    outcome = ("won" if c.mean > 0 else "lost") if c.resolved(ALPHA) else "not resolved: no clear winner"
    return f"{c.describe()}: {outcome}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _paths_text(paths: dict | None, sampling: str) -> str:
    """What the supernet trained on: the sampling, and the share of its paths that met the target."""
    what = "paths repaired to meet the target" if sampling == "feasible" else "uniform paths"
    if not paths:
        return what
    return (
        f"{what} ({paths['meet_target']:.0%} of its {paths['steps']} training paths met the target; uniform "
        f"paths would have: {paths['uniform_would_meet']:.0%})"
    )


def _latency_lines(path: Path) -> list[str]:
    """One line on the latency model's error, checked in a fresh process, in the target region apart."""
    if not path.exists():
        return []
    r = json.loads(path.read_text())
    parts = [
        f"{name} {100 * v['mean_abs_error']:.1f}% (bias {100 * v['mean_bias']:+.1f}%, {v['n']} nets)"
        for name, v in r["by_region"].items()
    ]
    return [
        f"- latency model, checked on {r['n']} nets timed whole in a fresh process: mean abs error "
        f"{100 * r['mean_abs_error']:.1f}%; by region: {'; '.join(parts)} (`latency_check.json`)"
    ]


def noise_for_a_third(noise: dict, recal_batches: int) -> tuple[int, int] | None:
    """What would bring one score's noise under a third of the spread: ``(recalibration batches, ranking
    images)``, or None when it already is.

    The noise budget (spread / 3) is split evenly between its two parts, each then at most
    spread / (3 sqrt 2). The re-scoring SD is taken to shrink as 1 / sqrt(recalibration batches) (it is the
    sampling noise of the BN statistics), the ranking set's as 1 / sqrt(images) at the same mean score.
    """
    spread = noise["spread_sd"]
    if not spread or noise["ratio"] < 1 / 3:
        return None
    part = spread / (3 * math.sqrt(2))
    variance = (noise["binomial_sd"] / 100) ** 2 * noise["ranking_images"]  # p (1 - p)
    batches = max(recal_batches, math.ceil(recal_batches * (noise["rescore_sd"] / part) ** 2))
    images = max(noise["ranking_images"], math.ceil(variance / (part / 100) ** 2))
    return batches, images


def _noise_lines(noise: dict | None, recal_batches: int) -> list[str]:
    """One line on how noisy a supernet score is against the spread of the candidates' scores, and what
    would make it small enough."""
    if not noise:
        return []
    enough = "under" if noise["ratio"] < 1 / 3 else "not under"
    line = (
        f"- scores: one supernet score's noise SD {noise['noise_sd']:.2f} points (re-scoring with other BN "
        f"recalibration batches {noise['rescore_sd']:.2f}, over {noise['rescored']} candidates; the ranking set's "
        f"{noise['ranking_images']} images {noise['binomial_sd']:.2f}) against the candidates' spread SD "
        f"{noise['spread_sd']:.2f}: ratio {noise['ratio']:.2f}, {enough} a third"
    )
    needed = noise_for_a_third(noise, recal_batches)
    if needed is not None:
        line += (
            f"; a third would take about {needed[0]} recalibration batches (`--recal-batches`, here "
            f"{recal_batches}) and {needed[1]:,} ranking images (`--search-fraction`, here "
            f"{noise['ranking_images']:,})"
        )
    return [line]


def _strategy_line(cfg: dict, summary: dict, halving: dict | None) -> str:
    """The report's line on how candidates were scored."""
    if halving:
        return (
            f"- successive halving: {halving['nets']} feasible nets, first rung {halving['first_epochs']} "
            f"epoch(s), each rung keeping 1/{halving['eta']} and training eta x as long from scratch "
            f"({halving['epochs_trained']} epochs in all; top-1 on the data's validation split of seed "
            f"{halving['seed']}, not a retraining seed); no supernet"
        )
    epochs, budget = cfg["epochs"], cfg["population"] * cfg["generations"]
    return (
        f"- supernet: {epochs} epoch{'s' * (epochs != 1)} of single-path training on "
        + _paths_text(summary.get("training_paths"), cfg.get("sampling", "uniform"))
        + f"; {budget} candidates evaluated by "
        "evolution and as many by random search (BN recalibrated, top-1 on images held out from the train split)"
    )


def _candidates_panel(ax, evolved: list[dict], randoms: list[dict], halving: dict | None, target: float, unit: str):
    """Right panel: what the search scored, against the latency the table predicts."""
    if halving:
        last = {}
        for r in halving["rungs"]:
            for name, top1 in r["top1"].items():
                last[name] = (r["rung"], top1)
        facts = {r["run"]: r for r in halving["first_rung"]}
        for rung in range(len(halving["rungs"])):
            names = [n for n, (k, _) in last.items() if k == rung]
            ax.scatter(
                [facts[n]["latency"] for n in names],
                [last[n][1] for n in names],
                s=16,
                label=f"last trained in rung {rung}",
            )
        ax.set_ylabel("held-out top-1 in the last rung each net reached (%)")
        ax.set_title("successive halving: every drawn net")
    else:
        for method, cand, color in (("random", randoms, "tab:gray"), ("evolution", evolved, "tab:blue")):
            ax.scatter([r["latency"] for r in cand], [r["top1"] for r in cand], s=10, alpha=0.6, c=color, label=method)
        ax.set_ylabel("top-1 with supernet weights on held-out train images (%)")
        ax.set_title("candidates evaluated during the search")
    ax.axvline(target, color="gray", ls="--", lw=1)
    ax.set_xlabel(f"predicted from the table ({unit})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _baseline_picks(out: Path) -> dict | None:
    """The ranking check's or the halving's record naming the baseline nets, if the search has one."""
    for record in (RANKING, HALVING):
        if (out / record).exists():
            return json.loads((out / record).read_text())
    return None


def write_search_report(out: str | Path) -> Path:
    """Writes ``pareto.png`` and ``report.md`` from the files of a finished search folder; returns the report.

    Raises:
        mixnet.experiment.folder.ForeignFolderError: ``out`` is not a search folder.
        ValueError: the search has not finished its retraining (names the missing files).
    """
    out = Path(out)
    cfg = upgrade_record(read_record(out, "search.json", kind="search"))
    missing = [n for n in FINISHED if not (out / n).exists()]
    if missing:
        raise ValueError(f"{out}: the search has not finished (no {', '.join(missing)}); run it to the end first")
    summary = json.loads((out / "search_summary.json").read_text())
    latency = json.loads((out / "final_latency.json").read_text())
    match = json.loads((out / "matched_width.json").read_text())
    candidates = read_jsonl(out / "candidates.jsonl")
    evolved = [r for r in candidates if r["method"] == "evolution"]
    randoms = [r for r in candidates if r["method"] == "random"]
    rows = read_runs(out / "retrain.jsonl")
    picks = _baseline_picks(out)
    same_pick = picks is not None and picks["macs_pick"] == picks["random_median"]
    nets = [n for n in latency if not (same_pick and n == "macs_pick")]
    target, unit = summary["target"], summary["unit"]
    runtime = {
        "eager": "PyTorch eager",
        "optimized": "the optimized rewrite (PyTorch)",
        "ort": "ONNX Runtime",
        "macs": "MACs counted (no device)",
    }[cfg["runtime"]]
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()
    by_seed = {name: _by_seed(rows, name) for name in nets}
    stats = {name: _mean_sd(list(v.values())) for name, v in by_seed.items()}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for name, (m, s) in stats.items():
        sd = 0.0 if math.isnan(s) else s
        ax.errorbar([latency[name]], [m], yerr=[sd], marker="o", capsize=4, label=name, ls="none", ms=8)
    ax.axvline(target, color="gray", ls="--", lw=1, label=f"target {target:.2f} {unit}")
    ax.set_xlabel(f"{runtime}, end to end ({unit})")
    ax.set_ylabel("held-out top-1 after retraining (%), mean, error bars ± SD over seeds")
    ax.set_title("retrained from scratch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    halving = json.loads((out / HALVING).read_text()) if (out / HALVING).exists() else None
    _candidates_panel(axes[1], evolved, randoms, halving, target, unit)
    save_figure(fig, out / "pareto.png")
    curves = [r | {"key": r["net"]} for r in rows.values() if r["status"] == "ok" and r["net"] in nets]
    plot_learning_curves(curves, nets, out, "retraining")

    skeleton = [n for n in nets if n not in ("found", "random_best", *BASELINES)][0]
    hard = cfg["hard"]
    lines = [
        "# Search result",
        "",
        f"- data: `{cfg['data']}` at {cfg['img_size']} px; space: {cfg['skeleton']}'s skeleton, the paper's "
        "per-block choices",
        f"- latency: {runtime}, batch {cfg['latency_batch_size']}, {cfg['latency_threads']} thread(s); "
        f"target {target:.3f} {unit} "
        f"({'hard constraint' if hard else 'soft reward, w = ' + str(cfg['w'])})",
        _strategy_line(cfg, summary, halving),
        *_noise_lines(summary.get("score_noise"), cfg["recal_batches"]),
        *_latency_lines(out / "latency_check.json"),
        f"- retraining: {cfg['retrain_epochs']} epoch{'s' * (cfg['retrain_epochs'] != 1)}, "
        f"seeds {', '.join(map(str, cfg['seeds']))}, the same recipe "
        "for every net; top-1 on the data's own validation split",
        "",
        f"| net | end to end ({unit}) | retrained top-1 (%), mean ± SD | per seed | "
        f"{'last rung top-1' if halving else 'supernet top-1'} (%) | predicted ({unit}) |",
        "|---|---|---|---|---|---|",
    ]
    search_rows = {"found": summary["found"], "random_best": summary.get("random_best") or {}}
    for name in nets:
        m, s = stats[name]
        v = [by_seed[name][k] for k in sorted(by_seed[name])]
        top1 = "-" if not v else f"{m:.2f}" + (f" ± {s:.2f}" if len(v) > 1 else " (one seed)")
        sr = search_rows.get(name, {})
        lines.append(
            f"| {name} | {latency[name]:.3f} | {top1} | {' / '.join(f'{x:.2f}' for x in v)} | "
            f"{_num(sr.get('top1'), 2)} | {_num(sr.get('latency'), 3)} |"
        )
    lines += [
        "",
        f"{skeleton}: the skeleton at the width whose measured latency is closest to the found net's "
        + f"({match['found']:.3f} {unit}).",
    ]
    closest = min(match["by_width"], key=lambda w: abs(match["by_width"][w] - match["found"]))
    if float(closest) != float(match["width"]):  # the widths were timed again after the retraining
        lines.append("")
        lines.append(
            f"Timed again, width {closest} ({match['by_width'][closest]:.3f} {unit}) is now the closest; the "
            f"retrained width {match['width']} took {match['by_width'][str(match['width'])]:.3f} {unit}."
        )
    widest_gap = abs(latency[skeleton] - latency["found"]) / latency["found"]
    if widest_gap > 0.1:
        fastest = min(match["by_width"].items(), key=lambda kv: kv[1])
        lines.append("")
        lines.append(
            f"No width reaches that latency here: the fastest, width {fastest[0]}, takes {fastest[1]:.3f} {unit} "
            f"({fastest[1] / match['found']:.1f}x the found net's), so this comparison is at the closest "
            "latency width scaling reaches, not at the same one."
        )
    if same_pick:
        lines += [
            "",
            f"The MACs pick is the median net itself ({picks['random_median']}): "
            "the random_median row and comparison stand for both.",
        ]
    for name, cand in (("evolution", evolved), ("random search", randoms)):
        top = [r["top1"] for r in cand]
        if top:
            lines.append("")
            lines.append(
                f"Supernet top-1 of the {len(top)} candidates of {name}: {min(top):.2f} to {max(top):.2f}% "
                f"(median {statistics.median(top):.2f}%)."
            )
    contrasts = holm_correct(
        [
            paired(by_seed[other], by_seed["found"], label=f"found - {other}")
            for other in (
                *(["random_best"] if "random_best" in nets else []),
                skeleton,
                *(b for b in BASELINES if b in nets),
            )
        ]
    )
    seeds = max(c.n for c in contrasts)
    lines += [
        "",
        "## Did the search win?",
        "",
        *(f"- {verdict(c)}" for c in contrasts),
        "",
        (
            "One seed: no significance can be claimed."
            if seeds < 2
            else "Paired by seed: the mean per-seed difference, its 95% CI (Student's t, "
            f"{seeds - 1} degree(s) of freedom) and two-sided p, Holm-corrected over these {len(contrasts)} "
            f"comparisons; resolved: corrected p < {ALPHA}. ± in the table is the SD over seeds."
        ),
        "",
        *slope_lines(curves, nets),
        *(ranking_lines(json.loads((out / RANKING).read_text())) if (out / RANKING).exists() else []),
        *(halving_lines(halving) if halving else []),
        "![Pareto](pareto.png)",
        "",
        (
            "Files: `found.json` (an architecture file: `mixnet train --arch found.json`), `halving.json` (the "
            "rungs), `halving.jsonl` (every rung's runs), `halving/` (the drawn nets), "
            if halving
            else "Files: `found.json` and `random_best.json` (architecture files: `mixnet train --arch found.json`), "
            "`candidates.jsonl` (every evaluated candidate), "
        )
        + (f"`{cfg['table']}` (the latency table given), " if cfg.get("table") else "`latency_table.json`, ")
        + "`retrain.jsonl` (with each run's learning curve, plotted in `learning_curves.png`), "
        "`final_latency.json`, `matched_width.json`, "
        "`retrain/<net>-s<seed>/`.",
        "",
    ]
    return write_text(out / "report.md", "\n".join(lines))

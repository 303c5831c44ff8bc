"""The search's report: the Pareto plot (top-1 vs measured latency) and whether the search won."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path


def _stats(rows: dict[str, dict], net: str) -> tuple[float, float, list[float]]:
    values = [r["top1"] for r in rows.values() if r["net"] == net and r["status"] == "ok"]
    if not values:
        return math.nan, math.nan, []
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, values


def verdict(a: tuple[float, float, list[float]], b: tuple[float, float, list[float]]) -> str:
    """Whether ``a`` beats ``b``: the mean difference against twice its standard error over seeds."""
    (ma, sa, va), (mb, sb, vb) = a, b
    if not va or not vb:
        return "not measured"
    diff = ma - mb
    if len(va) < 2 or len(vb) < 2:
        return f"{diff:+.2f} points (one seed: no spread to judge by)"
    se = math.hypot(sa / math.sqrt(len(va)), sb / math.sqrt(len(vb)))
    if abs(diff) <= 2 * se:
        return f"{diff:+.2f} points, within the seed spread (2 standard errors = {2 * se:.2f}): no clear winner"
    outcome = "won" if diff > 0 else "lost"
    return f"{diff:+.2f} points, beyond the seed spread (2 standard errors = {2 * se:.2f}): {outcome}"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def write_search_report(out: str | Path) -> Path:
    """Writes ``pareto.png`` and ``report.md`` from the files of a finished search folder; returns the report."""
    out = Path(out)
    cfg = json.loads((out / "search.json").read_text())
    summary = json.loads((out / "search_summary.json").read_text())
    latency = json.loads((out / "final_latency.json").read_text())
    match = json.loads((out / "matched_width.json").read_text())
    candidates = _jsonl(out / "candidates.jsonl")
    evolved = [r for r in candidates if r["method"] == "evolution"]
    randoms = [r for r in candidates if r["method"] == "random"]
    rows = {r["run"]: r for r in _jsonl(out / "retrain.jsonl")}
    nets = list(latency)
    target, unit = summary["target"], summary["unit"]
    runtime = {
        "eager": "PyTorch eager",
        "optimized": "the optimized rewrite (PyTorch)",
        "ort": "ONNX Runtime",
        "macs": "MACs counted (no device)",
    }[cfg["runtime"]]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = {name: _stats(rows, name) for name in nets}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for name, (m, s, _) in stats.items():
        ax.errorbar([latency[name]], [m], yerr=[s], marker="o", capsize=4, label=name, ls="none", ms=8)
    ax.axvline(target, color="gray", ls="--", lw=1, label=f"target {target:.2f} {unit}")
    ax.set_xlabel(f"{runtime}, end to end ({unit})")
    ax.set_ylabel("held-out top-1 after retraining (%), mean ± std over seeds")
    ax.set_title("retrained from scratch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    for method, cand, color in (("random", randoms, "tab:gray"), ("evolution", evolved, "tab:blue")):
        ax.scatter([r["latency"] for r in cand], [r["top1"] for r in cand], s=10, alpha=0.6, c=color, label=method)
    ax.axvline(target, color="gray", ls="--", lw=1)
    ax.set_xlabel(f"predicted from the table ({unit})")
    ax.set_ylabel("top-1 with supernet weights on held-out train images (%)")
    ax.set_title("candidates evaluated during the search")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=120)
    plt.close(fig)

    skeleton = [n for n in nets if n not in ("found", "random_best")][0]
    epochs, budget = cfg["epochs"], cfg["population"] * cfg["generations"]
    hard = cfg["hard"]
    lines = [
        "# Search result",
        "",
        f"- data: `{cfg['data']}` at {cfg['img_size']} px; space: {cfg['skeleton']}'s skeleton, the paper's "
        "per-block choices",
        f"- latency: {runtime}, batch {cfg['batch']}, {cfg['threads']} thread(s); target {target:.3f} {unit} "
        f"({'hard constraint' if hard else 'soft reward, w = ' + str(cfg['w'])})",
        f"- supernet: {epochs} epochs of uniform single-path training; {budget} candidates evaluated by "
        "evolution and as many by random search (BN recalibrated, top-1 on images held out from the train split)",
        f"- retraining: {cfg['retrain_epochs']} epochs, seeds {', '.join(map(str, cfg['seeds']))}, the same recipe "
        "for every net; top-1 on the data's own validation split",
        "",
        f"| net | end to end ({unit}) | retrained top-1 (%) | per seed | supernet top-1 (%) | predicted ({unit}) |",
        "|---|---|---|---|---|---|",
    ]
    search_rows = {"found": summary["found"], "random_best": summary["random_best"]}
    for name in nets:
        m, s, v = stats[name]
        sr = search_rows.get(name, {})
        lines.append(
            f"| {name} | {latency[name]:.3f} | {m:.2f} ± {s:.2f} | {' / '.join(f'{x:.2f}' for x in v)} | "
            f"{_num(sr.get('top1'), 2)} | {_num(sr.get('latency'), 3)} |"
        )
    lines += [
        "",
        f"{skeleton}: the skeleton at the width whose measured latency is closest to the found net's "
        + f"({match['found']:.3f} {unit}).",
    ]
    widest_gap = abs(latency[skeleton] - latency["found"]) / latency["found"]
    if widest_gap > 0.1:
        fastest = min(match["by_width"].items(), key=lambda kv: kv[1])
        lines.append("")
        lines.append(
            f"No width reaches that latency here: the fastest, width {fastest[0]}, takes {fastest[1]:.3f} {unit} "
            f"({fastest[1] / match['found']:.1f}x the found net's), so this comparison is at the closest "
            "latency width scaling reaches, not at the same one."
        )
    for name, cand in (("evolution", evolved), ("random search", randoms)):
        top = [r["top1"] for r in cand]
        if top:
            lines.append("")
            lines.append(
                f"Supernet top-1 of the {len(top)} candidates of {name}: {min(top):.2f} to {max(top):.2f}% "
                f"(median {statistics.median(top):.2f}%)."
            )
    lines += [
        "",
        "## Did the search win?",
        "",
        f"- found vs random search's best: {verdict(stats['found'], stats['random_best'])}",
        f"- found vs {skeleton}: {verdict(stats['found'], stats[skeleton])}",
        "",
        "![Pareto](pareto.png)",
        "",
        "Files: `found.json` and `random_best.json` (architecture files: `mixnet train --arch found.json`), "
        "`candidates.jsonl` (every evaluated candidate), `latency_table.json`, `retrain.jsonl`, "
        "`final_latency.json`, `matched_width.json`, `retrain/<net>-s<seed>/`.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"

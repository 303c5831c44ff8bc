"""Is the supernet's ranking worth anything? Measured on nets trained standalone, beside free proxies.

``mixnet search --check-ranking N`` draws N distinct feasible nets the way random search draws them (a
uniform draw repaired to meet the target, from a generator of its own), scores each with the supernet (the
search's own score: fixed BN recalibration batches, top-1 on the ranking images), trains each standalone for
a short schedule (the retraining recipe with ``check_ranking_epochs``, the first retraining seed) and
reports Kendall's tau and Spearman's rho, each with a percentile-bootstrap interval, of the supernet scores
against the standalone top-1, beside the same for two proxies that cost nothing: MACs and parameters. A
supernet that does not beat them is reported as such (Yu et al. 2020 found weight sharing often ranks
little better than chance; parameter counts are a hard baseline, Abdelfattah et al. 2021).

The N nets are also the baselines the search is judged against: the net of median standalone top-1 is the
median random feasible net, and the net with the most MACs is the free proxy's pick; both are retrained
over the seeds beside the found net. Each standalone run is a row of ``ranking.jsonl``: a resumed search
trains only what is missing.
"""

from __future__ import annotations

import functools
import random
import statistics
from pathlib import Path

from mixnet.experiment.rows import read_runs, write_json
from mixnet.experiment.stats import rank_correlation
from mixnet.models.archfile import save_arch
from mixnet.models.complexity import config_complexity
from mixnet.search.evolve import Evaluator, Objective, arch_key, repair
from mixnet.search.latency import LatencyTable
from mixnet.search.space import Arch, SearchSpace
from mixnet.search.standalone import StandaloneRun, train_config, train_standalone

RANKING, RANKING_ROWS, RANKING_DIR = "ranking.json", "ranking.jsonl", "ranking"
MIN_NETS = 4
_SEED_OFFSET = 7919  # the check's draws are not the searches' draws


def feasible_nets(space: SearchSpace, table: LatencyTable, objective: Objective, n: int, seed: int) -> list[Arch]:
    """``n`` distinct feasible nets, drawn as random search draws them (a uniform draw repaired to meet the
    target) from ``random.Random(seed)``.

    Raises:
        ValueError: the space holds fewer than ``n`` distinct feasible nets that the draws reach.
    """
    rng = random.Random(seed)
    nets: dict[str, Arch] = {}
    for _ in range(100 * n):
        arch = repair(space.sample(rng), space, table, objective, rng)
        nets.setdefault(arch_key(arch), arch)
        if len(nets) == n:
            return list(nets.values())
    raise ValueError(f"could not draw {n} distinct feasible nets")


def ranking_nets(space: SearchSpace, table: LatencyTable, objective: Objective, n: int, seed: int) -> list[Arch]:
    """The ranking check's ``n`` feasible nets, with a generator of their own (not the searches' draws)."""
    return feasible_nets(space, table, objective, n, seed + _SEED_OFFSET)


def correlations(x: list[float], y: list[float], seed: int = 0) -> dict:
    """Kendall's tau-b and Spearman's rho of ``x`` against ``y``, each with its bootstrap interval."""
    out = {}
    for method in ("kendall", "spearman"):
        c = rank_correlation(x, y, method, seed=seed)
        out[method] = {"value": round(c.value, 4), "ci": [round(v, 4) for v in c.ci], "n": c.n}
    return out


def check_ranking(cfg, space: SearchSpace, table: LatencyTable, evaluate: Evaluator, out: Path, log) -> dict:
    """Scores, trains and correlates ``cfg.check_ranking`` feasible nets (resumable); writes ``ranking.json``
    and the nets' architecture files; returns the summary."""
    nets = ranking_nets(space, table, evaluate.objective, cfg.check_ranking, cfg.seed)
    rows_path = out / RANKING_ROWS
    done = read_runs(rows_path)
    seed = cfg.seeds[0]
    folder = out / RANKING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    records, todo = [], []
    for i, arch in enumerate(nets):
        name = f"net{i:02d}"
        config = space.config(arch)
        arch_path = folder / f"{name}.json"
        if not arch_path.exists():
            save_arch(arch_path, config, name, {"drawn_for": "ranking check", "arch": arch_key(arch)})
        scored = evaluate(arch, "ranking")
        cost = config_complexity(config, cfg.img_size, num_classes=evaluate.supernet.num_classes)
        record = {
            "run": name,
            "arch": arch_key(arch),
            "supernet_top1": scored["top1"],
            "supernet_loss": scored.get("loss"),
            "latency": scored["latency"],
            "macs": cost.macs,
            "params": cost.params,
            "seed": seed,
        }
        records.append(record)
        if done.get(name, {}).get("status") != "ok":
            run_dir = folder / name
            make = functools.partial(
                train_config, cfg, run_dir, seed, arch=str(arch_path), epochs=cfg.check_ranking_epochs
            )
            todo.append(StandaloneRun(run_dir, make, dict(record), cost.macs))
    done |= train_standalone(cfg, todo, rows_path, log, "ranking check")
    for record in records:
        row = done[record["run"]]
        if row.get("status") != "ok":
            raise RuntimeError(f"ranking check: {record['run']} failed to train: {row.get('error')}")
        record["top1"] = row["top1"]
    standalone = [r["top1"] for r in records]
    summary = {
        "nets": len(records),
        "epochs": cfg.check_ranking_epochs,
        "seed": seed,
        "supernet": correlations([r["supernet_top1"] for r in records], standalone),
        "macs": correlations([r["macs"] for r in records], standalone),
        "params": correlations([r["params"] for r in records], standalone),
        "median_top1": statistics.median(standalone),
        "random_median": median_net(records)["run"],
        "macs_pick": max(records, key=lambda r: (r["macs"], r["supernet_top1"]))["run"],
        "rows": records,
    }
    write_json(out / RANKING, summary)
    tau = summary["supernet"]["kendall"]
    log(
        f"ranking check: supernet vs standalone Kendall tau {tau['value']:.2f} (95% CI {tau['ci'][0]:.2f} to "
        f"{tau['ci'][1]:.2f}); MACs {summary['macs']['kendall']['value']:.2f}, "
        f"params {summary['params']['kendall']['value']:.2f}"
    )
    return summary


def median_net(records: list[dict]) -> dict:
    """The net whose standalone top-1 is the (lower) median."""
    ranked = sorted(records, key=lambda r: (r["top1"], r["run"]))
    return ranked[(len(ranked) - 1) // 2]


def ranking_lines(summary: dict) -> list[str]:
    """The report's section on the ranking check."""

    def cell(c: dict) -> str:
        return f"{c['value']:+.2f} ({c['ci'][0]:+.2f} to {c['ci'][1]:+.2f})"

    lines = [
        "## Does the supernet rank nets?",
        "",
        f"{summary['nets']} feasible nets drawn as random search draws them, each trained standalone for "
        f"{summary['epochs']} epoch(s) (seed {summary['seed']}); rank correlation of each score with their "
        "standalone top-1, 95% percentile-bootstrap intervals:",
        "",
        "| score | Kendall tau | Spearman rho |",
        "|---|---|---|",
    ]
    for name, label in (("supernet", "supernet top-1"), ("macs", "MACs (free)"), ("params", "parameters (free)")):
        lines.append(f"| {label} | {cell(summary[name]['kendall'])} | {cell(summary[name]['spearman'])} |")
    sup = summary["supernet"]["kendall"]
    best_free = max(summary["macs"]["kendall"]["value"], summary["params"]["kendall"]["value"])
    if sup["ci"][0] > best_free:
        verdict = "the supernet ranks better than both free proxies (its interval lies above them)"
    elif sup["value"] > best_free:
        verdict = "the supernet's tau is above the free proxies', but its interval reaches them: not resolved"
    else:
        verdict = "the supernet does not rank better than a free proxy"
    lines += ["", f"Verdict: {verdict}.", ""]
    return lines

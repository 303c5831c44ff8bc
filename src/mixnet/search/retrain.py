"""After the search: the winners retrained from scratch beside the skeleton scaled to the same latency.

The nets are trained with the same recipe and seeds: the found net, the random search's best (the supernet
strategy), and the skeleton (MixNet-S) with the width multiplier whose measured latency is closest to the found
net's; with the ranking check (:mod:`mixnet.search.ranking`) or successive halving's first rung
(:mod:`mixnet.search.halving`) also the median random feasible net and the MACs pick among those nets.
Each is a run of :mod:`mixnet.experiment.runs` with the cluttered-digits recipe,
recorded as one row of ``retrain.jsonl``. Their end-to-end latency is measured interleaved in one session
(in the search's runtime; counted for the MACs proxy), and the report compares them paired by seed.
"""

from __future__ import annotations

import functools
import json

from mixnet.experiment.rows import read_runs, write_json
from mixnet.models.archfile import load_arch
from mixnet.models.complexity import config_complexity
from mixnet.search.halving import HALVING, HALVING_DIR
from mixnet.search.netcost import UNITS, measure_configs
from mixnet.search.ranking import RANKING, RANKING_DIR
from mixnet.search.space import Arch, SearchSpace
from mixnet.search.standalone import StandaloneRun, train_config, train_standalone

WIDTHS = tuple(round(0.25 + 0.05 * i, 2) for i in range(16))  # 0.25 .. 1.0


def matched_width(cfg, space: SearchSpace, found_config) -> tuple[float, float, dict[float, float]]:
    """The skeleton's width whose latency (in the search's runtime) is closest to the found net's:
    (width, found's latency, width -> latency)."""
    configs = [found_config] + [space.base.replace(width_mult=w) for w in WIDTHS]
    ms = measure_configs(
        configs, runtime=cfg.runtime, img_size=cfg.img_size, batch=cfg.latency_batch_size, threads=cfg.latency_threads
    )
    by_width = dict(zip(WIDTHS, ms[1:], strict=True))
    width = min(WIDTHS, key=lambda w: abs(by_width[w] - ms[0]))
    return width, ms[0], by_width


def retrain_and_report(cfg, space: SearchSpace, result, archs: dict[str, Arch], log) -> None:
    """Retrains the nets over the seeds (resumable), measures them, writes the plot and the report."""
    out = result.out
    found_config = space.config(archs[result.found["arch"]])
    match_path = out / "matched_width.json"
    if match_path.exists():
        match = json.loads(match_path.read_text())
    else:
        width, found, by_width = matched_width(cfg, space, found_config)
        match = {"width": width, "found": found, "by_width": {str(k): v for k, v in by_width.items()}}
        write_json(match_path, match)
    unit = UNITS[cfg.runtime]
    log(f"{cfg.skeleton} at width {match['width']} is closest to the found net's {match['found']:.3f} {unit}")
    nets = {"found": {"arch": str(out / "found.json")}}
    configs = [found_config]
    if result.random_best is not None:
        nets["random_best"] = {"arch": str(out / "random_best.json")}
        configs.append(space.config(archs[result.random_best["arch"]]))
    nets[f"{cfg.skeleton}_w{match['width']}"] = {"width": match["width"]}
    configs.append(space.base.replace(width_mult=match["width"]))
    for record, folder in ((RANKING, RANKING_DIR), (HALVING, HALVING_DIR)):
        if (out / record).exists():  # baselines: the median random feasible net and the MACs pick
            picks = json.loads((out / record).read_text())
            for name in ("random_median", "macs_pick"):
                path = out / folder / f"{picks[name]}.json"
                nets[name] = {"arch": str(path)}
                configs.append(load_arch(path)[1])
    results_path = out / "retrain.jsonl"
    done = read_runs(results_path)
    macs = {n: config_complexity(c, cfg.img_size, num_classes=10).macs for n, c in zip(nets, configs, strict=True)}
    todo = []
    for seed in cfg.seeds:
        for name, spec in nets.items():
            run = f"{name}-s{seed}"
            if done.get(run, {}).get("status") == "ok":
                continue
            run_dir = out / "retrain" / run
            make = functools.partial(train_config, cfg, run_dir, seed, **spec)
            todo.append(StandaloneRun(run_dir, make, {"run": run, "net": name, "seed": seed}, macs[name]))
    train_standalone(cfg, todo, results_path, log, "retraining")
    ms = measure_configs(
        configs, runtime=cfg.runtime, img_size=cfg.img_size, batch=cfg.latency_batch_size, threads=cfg.latency_threads
    )
    latency = dict(zip(nets, ms, strict=True))
    write_json(out / "final_latency.json", latency)
    from mixnet.search.report import write_search_report

    write_search_report(out)

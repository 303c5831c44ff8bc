"""After the search: the winners retrained from scratch beside the skeleton scaled to the same latency.

The nets are trained with the same recipe and seeds: the found net, the random search's best (the supernet
strategy), and the skeleton (MixNet-S) with the width multiplier whose measured latency is closest to the found
net's; with the ranking check (:mod:`mixnet.search.ranking`) or successive halving's first rung
(:mod:`mixnet.search.halving`) also the median random feasible net and the MACs pick among those nets.
Each is a run of :mod:`mixnet.experiment.runs` with the cluttered-digits recipe,
recorded as one row of ``retrain.jsonl``. Their end-to-end latency is measured interleaved in one fresh process
(in the search's runtime; counted for the MACs proxy), and the report compares them paired by seed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from mixnet.experiment.rows import read_runs, write_json
from mixnet.models.archfile import load_arch
from mixnet.models.complexity import config_complexity
from mixnet.models.configs import MixNetConfig
from mixnet.search.halving import HALVING, HALVING_DIR
from mixnet.search.netcost import UNITS, measure_configs, measure_configs_fresh
from mixnet.search.ranking import RANKING, RANKING_DIR
from mixnet.search.space import Arch, SearchSpace
from mixnet.search.standalone import StandaloneRun, train_config, train_standalone

WIDTHS = tuple(round(0.25 + 0.05 * i, 2) for i in range(16))  # 0.25 .. 1.0


def _measure(cfg, configs) -> list[float]:
    """End-to-end cost of ``configs``, timed in a fresh process as the latency check times its nets, so the
    report's latencies and the check's errors are measured alike (not in a process that has just trained)."""
    settings = {
        "runtime": cfg.runtime,
        "img_size": cfg.img_size,
        "batch": cfg.latency_batch_size,
        "threads": cfg.latency_threads,
    }
    if cfg.runtime == "macs":  # counted, not timed
        return measure_configs(configs, **settings)
    return measure_configs_fresh(configs, **settings)


def matched_width(cfg, space: SearchSpace, found_config) -> tuple[float, float, dict[float, float]]:
    """The skeleton's width whose latency (in the search's runtime) is closest to the found net's:
    (width, found's latency, width -> latency)."""
    configs = [found_config] + [space.base.replace(width_mult=w) for w in WIDTHS]
    ms = _measure(cfg, configs)
    by_width = dict(zip(WIDTHS, ms[1:], strict=True))
    width = min(WIDTHS, key=lambda w: abs(by_width[w] - ms[0]))
    return width, ms[0], by_width


def compared_nets(cfg, space: SearchSpace, out: Path, width: float) -> dict[str, tuple[dict, MixNetConfig]]:
    """The nets the report compares, from the folder's files: name -> (how to build it, its config)."""
    nets = {"found": out / "found.json"} | (
        {"random_best": out / "random_best.json"} if (out / "random_best.json").exists() else {}
    )
    compared = {name: ({"arch": str(path)}, load_arch(path)[1]) for name, path in nets.items()}
    compared[f"{cfg.skeleton}_w{width}"] = ({"width": width}, space.base.replace(width_mult=width))
    for record, folder in ((RANKING, RANKING_DIR), (HALVING, HALVING_DIR)):
        if (out / record).exists():  # baselines: the median random feasible net and the MACs pick
            picks = json.loads((out / record).read_text())
            for name in ("random_median", "macs_pick"):
                if name == "macs_pick" and picks[name] == picks["random_median"]:
                    continue  # one net: the report says it stands for both
                path = out / folder / f"{picks[name]}.json"
                compared[name] = ({"arch": str(path)}, load_arch(path)[1])
    return compared


def retime(out: str | Path, log=print) -> dict[str, float]:
    """Times a finished search's compared nets again, in a fresh process, and rewrites ``final_latency.json``
    (the report's latencies); returns the new latencies."""
    from mixnet.experiment.folder import read_record
    from mixnet.search.config import SearchConfig, upgrade_record

    out = Path(out)
    saved = upgrade_record(read_record(out, "search.json", kind="search"))
    cfg = SearchConfig(**{f.name: saved[f.name] for f in dataclasses.fields(SearchConfig) if f.name in saved})
    match_path = out / "matched_width.json"
    if not match_path.exists() or not (out / "found.json").exists():
        raise ValueError(f"{out}: the search has not found its net yet (no found.json or matched_width.json)")
    space = SearchSpace(cfg.skeleton, elastic_depth=cfg.elastic_depth)
    match = json.loads(match_path.read_text())
    compared = compared_nets(cfg, space, out, match["width"])
    before = json.loads((out / "final_latency.json").read_text()) if (out / "final_latency.json").exists() else {}
    # One session for all: the compared nets and the skeleton at every width (its retrained width among them).
    skeleton = f"{cfg.skeleton}_w{match['width']}"
    searched = [name for name in compared if name != skeleton]
    configs = [compared[n][1] for n in searched] + [space.base.replace(width_mult=w) for w in WIDTHS]
    ms = _measure(cfg, configs)
    by_width = dict(zip(WIDTHS, ms[len(searched) :], strict=True))
    timed = dict(zip(searched, ms[: len(searched)], strict=True)) | {skeleton: by_width[match["width"]]}
    latency = {name: timed[name] for name in compared}
    unit = UNITS[cfg.runtime]
    for name, value in latency.items():
        was = f" (was {before[name]:.3f})" if name in before else ""
        log(f"{name}: {value:.3f} {unit}{was}")
    match |= {"found": latency["found"], "by_width": {str(k): v for k, v in by_width.items()}}
    write_json(match_path, match)
    write_json(out / "final_latency.json", latency)
    return latency


def retrain_and_report(cfg, space: SearchSpace, result, archs: dict[str, Arch], log) -> None:
    """Retrains the nets over the seeds (resumable), measures them, writes the plot and the report."""
    out = result.out
    found_config = space.config(archs[result.found["arch"]])  # the same net as found.json
    match_path = out / "matched_width.json"
    if match_path.exists():
        match = json.loads(match_path.read_text())
    else:
        width, found, by_width = matched_width(cfg, space, found_config)
        match = {"width": width, "found": found, "by_width": {str(k): v for k, v in by_width.items()}}
        write_json(match_path, match)
    unit = UNITS[cfg.runtime]
    log(f"{cfg.skeleton} at width {match['width']} is closest to the found net's {match['found']:.3f} {unit}")
    compared = compared_nets(cfg, space, out, match["width"])
    nets = {name: spec for name, (spec, _) in compared.items()}
    configs = [config for _, config in compared.values()]
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
    ms = _measure(cfg, configs)
    latency = dict(zip(nets, ms, strict=True))
    write_json(out / "final_latency.json", latency)
    from mixnet.search.report import write_search_report

    write_search_report(out)

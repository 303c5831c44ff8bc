"""How well a latency table predicts whole nets: the check nets, the error per region, its plot.

The check times nets that span where a search goes: uniform draws, the space's cheapest and dearest nets,
and nets of the target region (draws repaired to meet the target), all end to end in a fresh process
(:mod:`mixnet.search.netcost`), and reports the error overall and per region.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

from mixnet.search.evolve import Objective, repair
from mixnet.search.latency import LatencyTable, cheap_sample, extreme
from mixnet.search.netcost import measure_configs, measure_configs_fresh
from mixnet.search.space import Arch, SearchSpace


def check_archs(
    space: SearchSpace, table: LatencyTable, *, n: int, seed: int, target: float | None = None
) -> tuple[list[Arch], list[str]]:
    """The nets a predictor check measures, with their region: ``n`` uniform draws, the cheapest and the
    dearest net, and ``n // 2`` nets of the target region (draws repaired to meet ``target``; without a
    target, cheap draws)."""
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    regions = ["uniform"] * n
    archs += [extreme(space, table), extreme(space, table, dearest=True)]
    regions += ["extreme", "extreme"]
    for _ in range(max(1, n // 2)):
        if target is not None:
            archs.append(repair(space.sample(rng), space, table, Objective(target, hard=True), rng))
        else:
            archs.append(cheap_sample(space, table, rng))
        regions.append("target" if target is not None else "cheap")
    return archs, regions


def predictor_error(
    table: LatencyTable,
    space: SearchSpace,
    *,
    n: int = 20,
    seed: int = 0,
    rounds: int = 9,
    target: float | None = None,
    fresh: bool = True,
) -> dict:
    """Predicted vs measured end-to-end latency of the nets of :func:`check_archs`, timed in a fresh process
    (``fresh``; in this one otherwise): the points, and the mean absolute and signed % error overall and
    per region (uniform, extreme, target or cheap)."""
    archs, regions = check_archs(space, table, n=n, seed=seed, target=target)
    settings = dict(
        runtime=table.runtime,
        img_size=table.img_size,
        batch=table.batch,
        threads=table.threads,
        num_classes=table.num_classes,
        channels_last=table.channels_last,
        rounds=rounds,
    )
    configs = [space.config(a) for a in archs]
    measured = measure_configs_fresh(configs, **settings) if fresh else measure_configs(configs, **settings)
    predicted = [table.predict(a) for a in archs]

    def summary(idx: list[int]) -> dict:
        rel = [(predicted[i] - measured[i]) / measured[i] for i in idx]
        return {
            "n": len(idx),
            "mean_abs_error": statistics.fmean(abs(r) for r in rel),
            "max_abs_error": max(abs(r) for r in rel),
            "mean_bias": statistics.fmean(rel),
        }

    by_region = {r: summary([i for i, x in enumerate(regions) if x == r]) for r in dict.fromkeys(regions)}
    return {
        "n": len(archs),
        "seed": seed,
        "runtime": table.runtime,
        "unit": table.unit,
        "fresh_process": fresh,
        "target": target,
        "predicted": predicted,
        "measured": measured,
        "regions": regions,
        **summary(list(range(len(archs)))),
        "by_region": by_region,
    }


def plot_predictor(result: dict, path: str | Path, title: str = "") -> Path:
    """Scatter of predicted vs measured latency with the y = x line."""
    from mixnet.plotting import pyplot, save_figure

    plt = pyplot()

    p, m = result["predicted"], result["measured"]
    unit = result.get("unit", "ms")
    fig, ax = plt.subplots(figsize=(5, 5))
    regions = result.get("regions") or ["uniform"] * len(p)
    for region in dict.fromkeys(regions):
        idx = [i for i, r in enumerate(regions) if r == region]
        ax.scatter([m[i] for i in idx], [p[i] for i in idx], s=18, label=region)
    lo, hi = min(p + m) * 0.9, max(p + m) * 1.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = measured")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured end to end ({unit}, median)")
    ax.set_ylabel(f"predicted from the table ({unit})")
    runtime = result.get("runtime", "eager")
    where = "a fresh process" if result.get("fresh_process") else "the table's process"
    ax.set_title(
        title
        or f"{runtime}, {result['n']} nets timed in {where}: mean abs error {100 * result['mean_abs_error']:.1f}%",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)

"""``mixnet search`` end to end: latency table, supernet, evolution vs random search, retraining, report.

Everything is written into one folder and every stage resumes: the latency table and the supernet
checkpoint are reused, evaluated candidates are read back from ``candidates.jsonl``, finished retraining
runs from ``retrain.jsonl``. A folder that holds another search's results is refused, and a search that
is refused (a table or target that does not fit) writes nothing.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mixnet.experiment.folder import claim_folder
from mixnet.experiment.rows import write_json, write_text
from mixnet.models.archfile import save_arch
from mixnet.search.config import SearchConfig, upgrade_record
from mixnet.search.evolve import (
    Evaluator,
    Objective,
    best,
    check_target,
    evolution_search,
    fixed_batches,
    random_search,
    repair,
)
from mixnet.search.latency import LatencyTable, load_table, measure_table
from mixnet.search.netcost import measure_configs
from mixnet.search.report import noise_for_a_third
from mixnet.search.space import SKIP, Arch, SearchSpace
from mixnet.search.train import build_splits, supernet_recipe, supernet_steps, train_supernet
from mixnet.train.distributed import DistInfo, broadcast_object, cleanup_distributed, init_distributed

RECORD = "search.json"


@dataclass
class SearchResult:
    """What a search produced (paths in the search folder)."""

    out: Path
    target: float
    found: dict
    random_best: dict | None  # None for successive halving, which has no random search
    files: dict = field(default_factory=dict)
    unit: str = "ms"


def prepare(cfg: SearchConfig, out: Path) -> None:
    """Creates the folder and records the options; another search's folder is refused untouched.

    Raises:
        mixnet.experiment.folder.ForeignFolderError: ``out`` holds another search (names the options).
    """
    defaults = SearchConfig().record()  # an option the record lacks had its default then
    claim_folder(out, RECORD, cfg.record(), kind="search", defaults=defaults, upgrade=upgrade_record)


def _expect(cfg: SearchConfig) -> dict:
    """The settings a latency table must have been measured with for this search."""
    return {
        "runtime": cfg.runtime,
        "threads": cfg.latency_threads,
        "batch": cfg.latency_batch_size,
        "img_size": cfg.img_size,
        "skeleton": cfg.skeleton,
        "elastic_depth": cfg.elastic_depth,
    }


def given_table(cfg: SearchConfig) -> LatencyTable | None:
    """The table named by ``cfg.table``, checked against the search's settings (None when none is named).

    Raises:
        ValueError: the file is missing, not a table, or measured with other settings.
    """
    if not cfg.table:
        return None
    if not Path(cfg.table).exists():
        raise ValueError(f"latency table {cfg.table} does not exist; make one with `mixnet latency-table`")
    return load_table(cfg.table, expect=_expect(cfg), allow_mismatch=cfg.allow_table_mismatch)


def latency_table(cfg: SearchConfig, space: SearchSpace, out: Path, num_classes: int, log) -> LatencyTable:
    """The table given, the one in the folder, or a new measurement (saved in the folder)."""
    if cfg.table:
        return given_table(cfg)
    path = out / "latency_table.json"
    if path.exists():
        return load_table(path, expect=_expect(cfg), allow_mismatch=cfg.allow_table_mismatch)
    log(f"{cfg.runtime} latency table ({len(space.slots())} positions x {len(space.choices())} choices) ...")
    table = measure_table(
        space,
        runtime=cfg.runtime,
        img_size=cfg.img_size,
        batch=cfg.latency_batch_size,
        threads=cfg.latency_threads,
        num_classes=num_classes,
    )
    table.save(path)
    return table


def run_search(cfg: SearchConfig, out: str | Path, *, log=print) -> SearchResult | None:
    """Runs (or resumes) a whole search; under torchrun only the supernet training is distributed and rank 0
    carries on alone (returns None on the other ranks)."""
    out = Path(out)
    info = init_distributed(cfg.device)
    try:
        space = SearchSpace(cfg.skeleton, elastic_depth=cfg.elastic_depth)
        space.check_skeleton()  # before anything is measured or trained
        splits = build_splits(
            cfg.data,
            cfg.img_size,
            search_fraction=cfg.search_fraction,
            seed=cfg.seed,
            crop_scale=cfg.crop_scale,
            crop_pct=cfg.crop_pct,
        )
        num_classes = len(splits.class_names)
        table = target = None
        if info.is_main:  # refuse before anything is written or trained: the table given, then the target
            table = given_table(cfg)
            skeleton = None
            if table is not None:
                if cfg.target is None:
                    skeleton = _skeleton_latency(cfg, space, table)
                check_target(table, cfg.target if cfg.target is not None else cfg.target_fraction * skeleton)
            prepare(cfg, out)
            table = table or latency_table(cfg, space, out, num_classes, log)
            target = _target(cfg, space, table, out, log, skeleton)
            check_target(table, target)
            latency_check(cfg, space, table, target, out, log)
        table, target = broadcast_object((table, target), info)  # every process draws the same feasible paths
        if cfg.strategy == "halving":  # standalone runs, on rank 0 alone: no supernet to train together
            if not info.is_main:
                return None
        else:
            supernet = _train_supernet(cfg, space, splits, table, target, out, info, log)
            if not info.is_main:
                return None
    finally:
        cleanup_distributed(info)
    # Rank 0 goes on alone: the retraining must not try to join the process group the others left.
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        os.environ.pop(key, None)
    if cfg.strategy == "halving":
        return _halving_and_report(cfg, space, table, target, out, num_classes, log)
    recipe = _supernet_recipe(cfg)
    paths = training_path_share(cfg, space, table, target, supernet_steps(splits, recipe, info.world_size))
    log(
        f"supernet: {paths['meet_target']:.0%} of its {paths['steps']} training paths meet the target "
        f"({paths['sampling']} sampling; uniform paths would have: {paths['uniform_would_meet']:.0%})"
    )
    return _search_and_report(cfg, space, splits, supernet, table, target, out, info, log, paths)


def _supernet_recipe(cfg: SearchConfig):
    """The supernet's TrainConfig from the search's options."""
    return supernet_recipe(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        workers=cfg.workers,
        threads=cfg.threads,
    )


def _train_supernet(cfg: SearchConfig, space, splits, table, target, out: Path, info: DistInfo, log):
    """The supernet trained (or resumed) on the search's training paths, under DDP when launched so."""
    sample = training_sampler(cfg, space, table, target)
    return train_supernet(space, splits, out, info, _supernet_recipe(cfg), sample=sample, log=log)


LATENCY_CHECK = "latency_check.json"


def latency_check(cfg: SearchConfig, space: SearchSpace, table: LatencyTable, target: float, out: Path, log) -> None:
    """The latency model checked where the search uses it: nets timed whole in a fresh process, the target
    region and the space's extremes among them (once per folder; skipped for the exact MACs count)."""
    path = out / LATENCY_CHECK
    if not cfg.latency_check or not table.measured or path.exists():
        return
    from mixnet.search.predictor import plot_predictor, predictor_error

    result = predictor_error(table, space, n=cfg.latency_check, seed=cfg.seed + 1, target=target)
    write_json(path, result)
    plot_predictor(result, path.with_suffix(".png"))
    region = result["by_region"]["target"]
    log(
        f"latency model, fresh process: mean abs error {100 * result['mean_abs_error']:.1f}% on {result['n']} nets; "
        f"target region {100 * region['mean_abs_error']:.1f}% (bias {100 * region['mean_bias']:+.1f}%)"
    )


def training_sampler(cfg: SearchConfig, space: SearchSpace, table: LatencyTable, target: float):
    """How the supernet's training paths are drawn: repaired to meet a hard target (``sampling`` feasible),
    else uniform over the space (None)."""
    if cfg.sampling != "feasible" or not cfg.hard:
        return None
    objective = Objective(target, cfg.w, cfg.hard)
    return lambda rng: repair(space.sample(rng), space, table, objective, rng)


def training_path_share(cfg: SearchConfig, space: SearchSpace, table: LatencyTable, target: float, steps: int) -> dict:
    """The share of the supernet's training paths that meet the target, beside the share uniform paths would
    have had (the same steps and seed)."""
    from mixnet.search.train import training_paths

    def share(sample) -> float:
        paths = training_paths(space, cfg.seed, steps, sample)
        return sum(table.predict(p) <= target for p in paths) / max(1, len(paths))

    sampled = training_sampler(cfg, space, table, target)
    return {
        "sampling": "feasible" if sampled else "uniform",
        "steps": steps,
        "meet_target": round(share(sampled), 4),
        "uniform_would_meet": round(share(None), 4),
    }


def _skeleton_latency(cfg: SearchConfig, space: SearchSpace, table: LatencyTable) -> float:
    """The skeleton's latency as the table predicts it (measured when it is no point of a restricted space).

    The table's prediction (checked against whole nets by ``mixnet latency-table --check``) rather than a
    new measurement: the constraint is judged with the table, so the target must be in the same terms; a
    single end-to-end measurement at another moment moves by 10-15% on a shared machine.
    """
    try:
        return table.predict(space.of_config(space.base))
    except ValueError:
        return measure_configs(
            [space.base],
            runtime=cfg.runtime,
            img_size=cfg.img_size,
            batch=cfg.latency_batch_size,
            threads=cfg.latency_threads,
            num_classes=table.num_classes,
        )[0]


def _target(
    cfg: SearchConfig, space: SearchSpace, table: LatencyTable, out: Path, log, skeleton: float | None = None
) -> float:
    """The target in the table's unit: given, the one recorded in the folder, or a fraction of the skeleton's
    latency (``skeleton`` when already known), recorded in ``target.json``."""
    if cfg.target is not None:
        return cfg.target
    path = out / "target.json"
    if path.exists():
        return json.loads(path.read_text())["target"]
    if skeleton is None:
        skeleton = _skeleton_latency(cfg, space, table)
    target = cfg.target_fraction * skeleton
    u = table.unit
    log(f"{cfg.skeleton}: {skeleton:.3f} {u} here; target {cfg.target_fraction:g} x that = {target:.3f} {u}")
    record = {"skeleton": skeleton, "fraction": cfg.target_fraction, "target": target, "unit": u}
    write_text(path, json.dumps(record) + "\n")
    return target


def _search_and_report(
    cfg, space, splits, supernet, table, target, out: Path, info: DistInfo, log, paths: dict
) -> SearchResult:
    device = info.device
    supernet.eval()
    recal = DataLoader(
        splits.train, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed)
    )
    val = DataLoader(splits.search_val, batch_size=256)
    objective = Objective(target, cfg.w, cfg.hard)
    evaluate = Evaluator(
        supernet,
        table,
        objective,
        recal,
        val,
        recal_batches=cfg.recal_batches,
        device=device,
        log_path=out / "candidates.jsonl",
    )
    t0 = time.perf_counter()
    evolved = evolution_search(
        space, table, objective, evaluate, population=cfg.population, generations=cfg.generations, seed=cfg.seed
    )
    randoms = random_search(space, table, objective, evaluate, cfg.budget, cfg.seed)
    log(f"search: {len(evolved)} evolution + {len(randoms)} random candidates in {time.perf_counter() - t0:.0f} s")
    found, random_best = best(evolved), best(randoms)
    keys = {row["arch"]: None for row in evolved + randoms}
    archs = _archs_by_key(space, keys)
    files = {}
    for name, row in (("found", found), ("random_best", random_best)):
        meta = {k: row[k] for k in ("top1", "latency", "reward")} | {"method": row["method"], "target": target}
        meta["unit"] = table.unit
        files[name] = save_arch(out / f"{name}.json", space.config(archs[row["arch"]]), name, meta)
    other = DataLoader(
        splits.train, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed + 1)
    )
    noise = score_noise(evaluate, archs, evolved + randoms, fixed_batches(other, cfg.recal_batches), len(val.dataset))
    needed = noise_for_a_third(noise, cfg.recal_batches)
    log(
        f"scores: noise SD {noise['noise_sd']:.2f} points (re-scoring {noise['rescore_sd']:.2f}, ranking set "
        f"{noise['binomial_sd']:.2f}) against a spread of {noise['spread_sd']:.2f}: ratio {noise['ratio']:.2f}"
        + (
            f"; under a third with about {needed[0]} recalibration batches and {needed[1]:,} ranking images"
            if needed
            else ""
        )
    )
    summary = {"target": target, "unit": table.unit, "found": found, "random_best": random_best}
    write_json(out / "search_summary.json", summary | {"training_paths": paths, "score_noise": noise})
    if cfg.check_ranking:
        from mixnet.search.ranking import check_ranking

        check_ranking(cfg, space, table, evaluate, out, log)
    result = SearchResult(out, target, found, random_best, files, table.unit)
    if cfg.retrain_epochs:
        from mixnet.search.retrain import retrain_and_report

        retrain_and_report(cfg, space, result, archs, log)
    return result


def _halving_and_report(cfg, space, table, target, out: Path, num_classes: int, log) -> SearchResult:
    """Successive halving (:mod:`mixnet.search.halving`), then the same retraining and report."""
    from mixnet.search.halving import halving_search

    summary = halving_search(cfg, space, table, target, out, num_classes, log)
    found = summary["found"]
    archs = _archs_by_key(space, [found["arch"]])
    meta = {k: found[k] for k in ("top1", "latency", "reward")} | {"method": "halving", "target": target}
    files = {
        "found": save_arch(out / "found.json", space.config(archs[found["arch"]]), "found", meta | {"unit": table.unit})
    }
    write_json(
        out / "search_summary.json", {"target": target, "unit": table.unit, "strategy": "halving", "found": found}
    )
    result = SearchResult(out, target, found, None, files, table.unit)
    if cfg.retrain_epochs:
        from mixnet.search.retrain import retrain_and_report

        retrain_and_report(cfg, space, result, archs, log)
    return result


def score_noise(evaluate: Evaluator, archs: dict, rows: list[dict], other_recal, images: int, k: int = 16) -> dict:
    """How noisy a supernet score is against how much the candidates' scores differ.

    ``k`` candidates (every ``len(rows) // k``-th) are scored again with other recalibration batches; the
    re-scoring SD is the SD of the two scores' difference over sqrt(2) (one score's share). The ranking
    set's own sampling SD is the binomial ``sqrt(p (1 - p) / images)`` at the mean score. Their root sum of
    squares is one score's noise; the spread is the SD of all candidates' scores. A ratio under 1/3 lets the
    scores rank candidates whose true scores differ by about one spread.
    """
    import statistics

    scores = [r["top1"] for r in rows]
    picked = rows[:: max(1, len(rows) // k)][:k]
    diffs = [evaluate.score(archs[r["arch"]], other_recal)[0] - r["top1"] for r in picked]
    rescore = statistics.stdev(diffs) / math.sqrt(2) if len(diffs) > 1 else math.nan
    p = statistics.fmean(scores) / 100
    binomial = 100 * math.sqrt(p * (1 - p) / max(1, images))
    spread = statistics.stdev(scores) if len(scores) > 1 else math.nan
    noise = math.hypot(rescore, binomial)
    return {
        "rescored": len(picked),
        "rescore_sd": round(rescore, 4),
        "binomial_sd": round(binomial, 4),
        "noise_sd": round(noise, 4),
        "spread_sd": round(spread, 4),
        "ratio": round(noise / spread, 4) if spread else math.inf,
        "ranking_images": images,
    }


def _archs_by_key(space: SearchSpace, keys) -> dict[str, Arch]:
    """Rebuilds architectures from their keys (the candidates log stores keys)."""
    by_key = {}
    lookup = {}
    from mixnet.search.latency import choice_key

    for c in [*space.choices(), SKIP]:
        lookup[choice_key(c)] = c
    for key in keys:
        by_key[key] = tuple(lookup[k] for k in key.split("|"))
    return by_key

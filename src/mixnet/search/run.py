"""``mixnet search`` end to end: latency table, supernet, evolution vs random search, retraining, report.

Everything is written into one folder and every stage resumes: the latency table and the supernet
checkpoint are reused, evaluated candidates are read back from ``candidates.jsonl``, finished retraining
runs from ``retrain.jsonl``. A folder that holds another search's results is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mixnet.io.atomic import atomic_write
from mixnet.models.archfile import save_arch
from mixnet.search.evolve import Evaluator, Objective, best, check_target, evolution_search, random_search
from mixnet.search.latency import RUNTIMES, LatencyTable, load_table, measure_configs, measure_table
from mixnet.search.space import SKIP, Arch, SearchSpace
from mixnet.search.train import build_splits, train_supernet
from mixnet.train.distributed import DistInfo, cleanup_distributed, init_distributed

RECORD = "search.json"


@dataclass(frozen=True)
class SearchConfig:
    """Every option of a search (defaults: the run on the built-in cluttered digits on a 2-core CPU)."""

    data: str = "cluttered-digits"
    img_size: int = 40
    skeleton: str = "mixnet_s"
    elastic_depth: bool = False
    # latency
    runtime: str = "eager"
    batch: int = 1
    threads: int = 1
    table: str | None = None
    allow_table_mismatch: bool = False
    # objective (the target in the table's unit: ms, or MMAC for the MACs proxy)
    target: float | None = None
    target_fraction: float = 0.5
    w: float = -0.07
    hard: bool = True
    # supernet
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.004
    weight_decay: float = 0.05
    search_fraction: float = 0.1
    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_pct: float = 1.0
    # search
    population: int = 16
    generations: int = 6
    recal_batches: int = 4
    # retraining
    retrain_epochs: int = 14
    seeds: tuple[int, ...] = (0, 1)
    seed: int = 0
    device: str = "auto"
    train_threads: int = 0
    workers: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.img_size < 8 or self.batch < 1 or self.threads < 1 or self.epochs < 1 or self.batch_size < 1:
            problems.append("img_size >= 8, batch, threads, epochs and batch_size >= 1")
        if self.target is not None and self.target <= 0:
            problems.append(f"target must be > 0, got {self.target}")
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if not 0 < self.target_fraction <= 1:
            problems.append(f"target_fraction must be in (0, 1], got {self.target_fraction}")
        if self.population < 4 or self.generations < 1:
            problems.append("population >= 4 and generations >= 1")
        if not 0 < self.search_fraction < 0.5:
            problems.append(f"search_fraction must be in (0, 0.5), got {self.search_fraction}")
        if self.retrain_epochs < 0 or not self.seeds:
            problems.append("retrain_epochs >= 0 and at least one seed")
        if problems:
            raise ValueError("bad search option(s): " + "; ".join(problems))

    @property
    def budget(self) -> int:
        """Evaluated candidates per search method."""
        return self.population * self.generations

    def to_dict(self) -> dict:
        """JSON-able values."""
        d = dataclasses.asdict(self)
        d["crop_scale"], d["seeds"] = list(self.crop_scale), list(self.seeds)
        return d


@dataclass
class SearchResult:
    """What a search produced (paths in the search folder)."""

    out: Path
    target: float
    found: dict
    random_best: dict
    files: dict = field(default_factory=dict)
    unit: str = "ms"


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def prepare(cfg: SearchConfig, out: Path) -> None:
    """Creates the folder and records the options; another search's folder is refused untouched."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RECORD
    mine = {k: v for k, v in cfg.to_dict().items() if k not in ("device", "train_threads", "workers")}
    if path.exists():
        saved = json.loads(path.read_text())
        defaults = SearchConfig().to_dict()  # an option the record lacks had its default then
        diff = sorted(k for k in mine if saved.get(k, defaults[k]) != mine[k])
        if diff:
            raise ValueError(f"{out} holds another search (differs in {', '.join(diff)}); use another --out")
        return
    _write(path, json.dumps(mine, indent=2) + "\n")


def latency_table(cfg: SearchConfig, space: SearchSpace, out: Path, num_classes: int, log) -> LatencyTable:
    """The table given, the one in the folder, or a new measurement."""
    expect = {
        "runtime": cfg.runtime,
        "threads": cfg.threads,
        "batch": cfg.batch,
        "img_size": cfg.img_size,
        "skeleton": cfg.skeleton,
        "elastic_depth": cfg.elastic_depth,
    }
    path = Path(cfg.table) if cfg.table else out / "latency_table.json"
    if path.exists():
        return load_table(path, expect=expect, allow_mismatch=cfg.allow_table_mismatch)
    if cfg.table:
        raise ValueError(f"latency table {cfg.table} does not exist; make one with `mixnet latency-table`")
    log(f"{cfg.runtime} latency table ({len(space.slots())} positions x {len(space.choices())} choices) ...")
    table = measure_table(
        space,
        runtime=cfg.runtime,
        img_size=cfg.img_size,
        batch=cfg.batch,
        threads=cfg.threads,
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
        if info.is_main:
            prepare(cfg, out)
        splits = build_splits(
            cfg.data,
            cfg.img_size,
            search_fraction=cfg.search_fraction,
            seed=cfg.seed,
            crop_scale=cfg.crop_scale,
            crop_pct=cfg.crop_pct,
        )
        num_classes = len(splits.class_names)
        if info.is_main:  # fail before training when the target cannot be met
            table = latency_table(cfg, space, out, num_classes, log)
            target = _target(cfg, space, table, out, log)
            check_target(table, target)
        supernet = train_supernet(
            space,
            splits,
            out,
            info,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            seed=cfg.seed,
            workers=cfg.workers,
            log=log,
        )
        if not info.is_main:
            return None
    finally:
        cleanup_distributed(info)
    # Rank 0 goes on alone: the retraining must not try to join the process group the others left.
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        os.environ.pop(key, None)
    return _search_and_report(cfg, space, splits, supernet, table, target, out, info, log)


def _target(cfg: SearchConfig, space: SearchSpace, table: LatencyTable, out: Path, log) -> float:
    """The target in the table's unit: given, or a fraction of the skeleton's latency as the table predicts it.

    The table's prediction (checked against whole nets by ``mixnet latency-table --check``) rather than a
    new measurement: the constraint is judged with the table, so the target must be in the same terms; a
    single end-to-end measurement at another moment moves by 10-15% on a shared machine.
    """
    if cfg.target is not None:
        return cfg.target
    path = out / "target.json"
    if path.exists():
        return json.loads(path.read_text())["target"]
    try:
        skeleton = table.predict(space.of_config(space.base))
    except ValueError:  # the skeleton is not a point of a restricted space: measure it
        skeleton = measure_configs(
            [space.base],
            runtime=cfg.runtime,
            img_size=cfg.img_size,
            batch=cfg.batch,
            threads=cfg.threads,
            num_classes=table.num_classes,
        )[0]
    target = cfg.target_fraction * skeleton
    u = table.unit
    log(f"{cfg.skeleton}: {skeleton:.3f} {u} here; target {cfg.target_fraction:g} x that = {target:.3f} {u}")
    record = {"skeleton": skeleton, "fraction": cfg.target_fraction, "target": target, "unit": u}
    _write(path, json.dumps(record) + "\n")
    return target


def _search_and_report(cfg, space, splits, supernet, table, target, out: Path, info: DistInfo, log) -> SearchResult:
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
    _write(
        out / "search_summary.json",
        json.dumps({"target": target, "unit": table.unit, "found": found, "random_best": random_best}, indent=2) + "\n",
    )
    result = SearchResult(out, target, found, random_best, files, table.unit)
    if cfg.retrain_epochs:
        from mixnet.search.retrain import retrain_and_report

        retrain_and_report(cfg, space, result, archs, log)
    return result


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

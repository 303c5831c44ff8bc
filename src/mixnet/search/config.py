"""The options of a ``mixnet search``: one frozen dataclass, recorded in the search folder.

As with :class:`mixnet.train.config.TrainConfig`, every field carries its command-line help, and
``mixnet search`` is generated from the fields. The shared vocabulary holds here too: ``batch_size`` is the
supernet's training batch, ``threads``, ``workers`` and ``device`` apply to all training (supernet and
retraining), ``jobs`` to the standalone trainings; the latency measurements have their own
``latency_batch_size`` and ``latency_threads``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mixnet.search.netcost import RUNTIMES
from mixnet.train.config import option

SAMPLINGS = ("feasible", "uniform")
STRATEGIES = ("supernet", "halving")
# Options that depend on the machine, not on what is searched: left out of the folder's record.
MACHINE_OPTIONS = ("device", "threads", "workers", "jobs")
# Record keys of earlier searches -> today's option names (their "threads" was the latency's).
RECORD_RENAMED = {"batch": "latency_batch_size", "threads": "latency_threads"}


@dataclass(frozen=True)
class SearchConfig:
    """Every option of a search (defaults: the run on the built-in cluttered digits on a 2-core CPU)."""

    data: str = option(
        "cluttered-digits", "ImageFolder root (train/, val/), 'digits' or 'cluttered-digits' (the built-in sets)"
    )
    img_size: int = option(40, "resolution of the supernet, the candidates and the latency measurements")
    skeleton: str = option("mixnet_s", "registered model whose strides and widths are kept")
    elastic_depth: bool = option(False, "search stage depths too: any block but a stage's first may be left out")
    # latency
    runtime: str = option(
        "eager",
        "what latency is: PyTorch eager, the optimized rewrite, ONNX Runtime, or macs (counted, no device); "
        "with --table, the runtime it was measured on",
        choices=RUNTIMES,
    )
    latency_batch_size: int = option(1, "images per forward pass of the latency measurements")
    latency_threads: int = option(1, "intra-op threads (torch or ONNX Runtime) of the latency measurements")
    table: str | None = option(None, "a latency table from `mixnet latency-table`; none: measured here")
    latency_check: int = option(
        8,
        "random nets that check the latency model in a fresh process once the target is known, beside the "
        "cheapest and dearest net and half as many nets of the target region (0: no check)",
    )
    allow_table_mismatch: bool = option(False, "use a table measured with other settings (with a warning)")
    # objective (the target in the table's unit: ms, or MMAC for the MACs proxy)
    target: float | None = option(
        None, "latency target in the table's unit (ms, or MMAC for --runtime macs); none: target-fraction x skeleton's"
    )
    target_fraction: float = option(0.5, "target as a fraction of the skeleton's latency as the table predicts it")
    w: float = option(-0.07, "exponent of the soft reward ACC x (LAT/T)^w (with --no-hard)")
    hard: bool = option(True, "a hard latency limit; --no-hard: MnasNet's soft reward instead")
    strategy: str = option(
        "supernet",
        "supernet (one weight-sharing supernet trained, then evolution and random search score candidates with "
        "it) or halving (successive halving over short standalone trainings, no supernet)",
        choices=STRATEGIES,
    )
    # supernet
    sampling: str = option(
        "feasible",
        "supernet training paths: feasible (uniform draws repaired to meet a hard target, the region the search "
        "ranks) or uniform (the whole space)",
        choices=SAMPLINGS,
    )
    epochs: int = option(15, "supernet training epochs")
    batch_size: int = option(64, "supernet training batch size")
    lr: float = option(0.004, "supernet peak learning rate (AdamW, warmup and cosine)")
    weight_decay: float = option(0.05, "supernet weight decay")
    search_fraction: float = option(0.1, "share of the train split held out to rank candidates")
    crop_scale: tuple[float, float] = option((0.8, 1.0), "supernet random-crop area range (min max)")
    crop_pct: float = option(1.0, "eval center-crop fraction")
    # search
    population: int = option(16, "evolution population")
    generations: int = option(6, "evolution generations (the random baseline evaluates as many candidates)")
    recal_batches: int = option(4, "batches that recalibrate BN statistics before a candidate is scored")
    # the ranking check
    check_ranking: int = option(
        0,
        "train this many feasible nets standalone and report how well supernet scores, MACs and params rank "
        "them (Kendall, Spearman, bootstrap CIs; 16 or more for an interval that says something); 0: no check",
    )
    check_ranking_epochs: int = option(6, "epochs of each standalone run of the ranking check")
    # successive halving (--strategy halving)
    halving_nets: int = option(16, "successive halving: feasible nets drawn for its first rung")
    halving_epochs: int = option(2, "successive halving: epochs of each first-rung training")
    halving_eta: int = option(2, "successive halving: each rung keeps 1/eta of its nets and trains eta x as long")
    # retraining
    retrain_epochs: int = option(14, "epochs of the final retraining (0: none)")
    seeds: tuple[int, ...] = option((0, 1), "retraining seeds")
    seed: int = option(0, "search seed")
    device: str = option("auto", "auto (cuda if available), cpu, cuda")
    threads: int = option(0, "CPU threads for training, the supernet's and the retraining's (0: torch's default)")
    workers: int = option(0, "data loader worker processes")
    jobs: int = option(
        1,
        "standalone trainings (ranking check, rungs, retraining) run this many at once, each in a worker process "
        "of its own, the dearest first (with threads 0: one thread each)",
    )

    def __post_init__(self) -> None:
        problems = []
        positive = ("img_size", "latency_batch_size", "latency_threads", "epochs", "batch_size")
        if self.img_size < 8 or any(getattr(self, k) < 1 for k in positive):
            problems.append("img_size >= 8, latency_batch_size, latency_threads, epochs and batch_size >= 1")
        if self.threads < 0 or self.workers < 0:
            problems.append(f"threads and workers must be >= 0, got {self.threads}, {self.workers}")
        if self.jobs < 1:
            problems.append(f"jobs must be >= 1, got {self.jobs}")
        if self.target is not None and self.target <= 0:
            problems.append(f"target must be > 0, got {self.target}")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.strategy == "halving" and (self.halving_nets < 4 or self.halving_epochs < 1 or self.halving_eta < 2):
            problems.append("halving_nets >= 4, halving_epochs >= 1 and halving_eta >= 2")
        if self.strategy == "halving" and self.check_ranking:
            problems.append("check_ranking ranks a supernet's scores: it needs strategy supernet")
        if self.sampling not in SAMPLINGS:
            problems.append(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if not 0 < self.target_fraction <= 1:
            problems.append(f"target_fraction must be in (0, 1], got {self.target_fraction}")
        if self.population < 4 or self.generations < 1:
            problems.append("population >= 4 and generations >= 1")
        if not 0 < self.search_fraction < 0.5:
            problems.append(f"search_fraction must be in (0, 0.5), got {self.search_fraction}")
        if self.latency_check < 0:
            problems.append(f"latency_check must be >= 0, got {self.latency_check}")
        if self.check_ranking and (self.check_ranking < 4 or self.check_ranking_epochs < 1):
            problems.append("check_ranking 0 or >= 4 nets, of check_ranking_epochs >= 1")
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

    def record(self) -> dict:
        """What the search folder records: :meth:`to_dict` without the machine's options."""
        return {k: v for k, v in self.to_dict().items() if k not in MACHINE_OPTIONS}


def upgrade_record(saved: dict) -> dict:
    """A search folder's record with earlier option names renamed to today's, and the options it predates set
    to what that search did: uniform training paths, no latency check, no ranking check, the supernet strategy."""
    if any(new in saved for new in RECORD_RENAMED.values()):
        out = dict(saved)
    else:
        out = {RECORD_RENAMED.get(k, k): v for k, v in saved.items()}
    for name, then in (("sampling", "uniform"), ("latency_check", 0), ("check_ranking", 0), ("strategy", "supernet")):
        out.setdefault(name, then)
    for unused in ("check_ranking_epochs", "halving_nets", "halving_epochs", "halving_eta"):  # without their parts
        out.setdefault(unused, getattr(SearchConfig, unused))
    return out

"""Study results on disk: one JSON line per finished (or failed) run, and per-variant summaries.

Each process of a study appends to its own file (``results.jsonl``, or ``results-shard<K>of<N>.jsonl`` for a
shard), one line per run, written and flushed as the run ends (:mod:`mixnet.experiment.rows`); a killed
study loses at most the run in progress (whose checkpoint the next invocation resumes from). Readers merge
every results file of the folder, the latest line of a run winning.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

from mixnet.experiment.rows import read_runs

RESULTS_GLOB = "results*.jsonl"
RUN_COLUMNS = [
    "run",
    "key",
    "model",
    "kernels",
    "seed",
    "status",
    "top1",
    "top5",
    "epochs",
    "train_seconds",
    "params",
    "macs_m",
    "conv_linear_macs_m",
    "params_imagenet",
    "macs_imagenet_m",
    "error",
    "finished_at",
]
SUMMARY_COLUMNS = [
    "key",
    "model",
    "kernels",
    "seeds",
    "failed",
    "top1_mean",
    "top1_std",
    "top1_runs",
    "params",
    "macs_m",
    "conv_linear_macs_m",
    "params_imagenet",
    "macs_imagenet_m",
    "latency_ms",
]


def results_name(shard: tuple[int, int] = (0, 1)) -> str:
    """The results file of a process: ``results.jsonl``, or one per shard."""
    k, n = shard
    return "results.jsonl" if n == 1 else f"results-shard{k}of{n}.jsonl"


def read_rows(folder: str | Path) -> dict[str, dict]:
    """The latest row of every run in every results file of ``folder`` (run id -> row).

    A line that does not parse (a process killed mid-write) is skipped: its run is simply not done.
    """
    return read_runs(sorted(Path(folder).glob(RESULTS_GLOB)))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: Iterable[dict], order: Sequence[str], latency_ms: dict[str, float] | None = None) -> list[dict]:
    """One row per variant (``order``: variant keys in study order): top-1 mean and spread over its seeds."""
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    out = []
    for key in order:
        runs = sorted(by_key.get(key, []), key=lambda r: r["seed"])
        ok = [r for r in runs if r["status"] == "ok"]
        if not runs:
            continue
        mean, std = mean_std([r["top1"] for r in ok])
        first = (ok or runs)[0]
        out.append(
            {
                "key": key,
                "model": first["model"],
                "kernels": first["kernels"],
                "seeds": len(ok),
                "failed": len(runs) - len(ok),
                "top1_mean": mean,
                "top1_std": std,
                "top1_runs": [r["top1"] for r in ok],
                "top1_by_seed": {r["seed"]: r["top1"] for r in ok},
                **{c: first.get(c) for c in SUMMARY_COLUMNS[8:-1]},
                "latency_ms": (latency_ms or {}).get(key),
            }
        )
    return out

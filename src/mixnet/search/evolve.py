"""Ranking candidates with the trained supernet, and the two searches: evolution and random.

A candidate is evaluated as SPOS does: its weights are copied out of the supernet into a standalone net,
its BatchNorm statistics are recomputed on a few training batches (shared BN statistics belong to no
single path), and its top-1 on images held out from the train split is measured. Its latency comes from
the latency table (in the table's unit: ms, or MMAC for the MACs proxy). The objective is MnasNet's:
``ACC x (LAT / T) ^ w`` with ``w = -0.07`` (soft), or
``ACC`` where ``LAT <= T`` and nothing otherwise (hard).

Evolution (SPOS's): a population of the best candidates so far; each generation adds mutants (each block
re-drawn with a small probability) and crossovers (each block from one of two parents) of the top half.
Random search draws candidates uniformly. Under a hard target both repair a net that misses it the same
way (:func:`repair`), so both search the feasible nets, and both get the same budget of evaluated
candidates: the comparison says whether the evolution found anything.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from mixnet.experiment.rows import append_row, read_runs
from mixnet.search.latency import LatencyTable, choice_key
from mixnet.search.space import Arch, BlockChoice, SearchSpace
from mixnet.search.supernet import SuperNet


@dataclass(frozen=True)
class Objective:
    """MnasNet's reward with target ``target`` (in the latency table's unit): soft ``ACC x (LAT/T)^w`` or
    hard ``LAT <= T``."""

    target: float
    w: float = -0.07
    hard: bool = False

    def __call__(self, top1: float, latency: float) -> float:
        """The reward (hard: -inf for a net over the target)."""
        if self.hard:
            return top1 if latency <= self.target else -math.inf
        return top1 * (latency / self.target) ** self.w

    def feasible(self, latency: float) -> bool:
        """Whether a net may be chosen at all (always, with the soft reward)."""
        return not self.hard or latency <= self.target


def check_target(table: LatencyTable, target: float) -> None:
    """Raises ValueError naming the fastest reachable latency when no net of the space meets ``target``."""
    if table.fastest() > target:
        u = table.unit
        raise ValueError(
            f"no net of the search space meets the target of {target:.3f} {u} ({table.runtime}): the fastest "
            f"reachable is {table.fastest():.3f} {u} (the slowest {table.slowest():.3f} {u}) for this table's settings"
        )


def arch_key(arch: Arch) -> str:
    """A net's choices as one string (for caching and logs)."""
    return "|".join(choice_key(c) for c in arch)


def fixed_batches(loader: DataLoader, batches: int) -> list[torch.Tensor]:
    """The first ``batches`` image batches of ``loader``, kept: every candidate is recalibrated on the same
    images, so a score difference is never a difference of recalibration batches."""
    return [x for x, _ in itertools.islice(loader, batches)]


def recalibrate_bn(net: nn.Module, batches: list[torch.Tensor], device: torch.device) -> None:
    """Recomputes every BatchNorm's running statistics as the average over the given training batches."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad():
        for x in batches:
            net(x.to(device))
    net.eval()


def score(net: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Top-1 (%) and mean cross-entropy of ``net`` on ``loader`` (the loss breaks top-1 ties)."""
    net.eval()
    correct = total = 0
    loss = 0.0
    with torch.inference_mode():
        for x, y in loader:
            logits = net(x.to(device)).cpu()
            correct += int((logits.argmax(1) == y).sum())
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return 100.0 * correct / max(1, total), loss / max(1, total)


def top1(net: nn.Module, loader: DataLoader, device: torch.device) -> float:
    """Top-1 (%) of ``net`` on ``loader``."""
    return score(net, loader, device)[0]


class Evaluator:
    """Evaluates candidates once each (cached), writing one JSON line per evaluation to ``log_path``."""

    def __init__(
        self,
        supernet: SuperNet,
        table: LatencyTable,
        objective: Objective,
        recal_loader: DataLoader,
        val_loader: DataLoader,
        *,
        recal_batches: int,
        device: torch.device,
        log_path: Path | None = None,
    ) -> None:
        self.supernet, self.table, self.objective = supernet, table, objective
        self.recal = fixed_batches(recal_loader, recal_batches)
        self.val_loader, self.device = val_loader, device
        self.log_path = log_path
        # A resumed search does not evaluate twice.
        self.cache: dict[str, dict] = {} if log_path is None else read_runs(log_path, key="arch")

    def __call__(self, arch: Arch, method: str) -> dict:
        """The candidate's row: top-1 on the held-out images, predicted latency, reward."""
        key = arch_key(arch)
        if key in self.cache:
            return self.cache[key]
        latency = self.table.predict(arch)
        acc, loss = self.score(arch)
        row = {
            "arch": key,
            "method": method,
            "top1": acc,
            "loss": round(loss, 6),
            "latency": latency,
            "reward": self.objective(acc, latency),
        }
        self.cache[key] = row
        if self.log_path is not None:
            append_row(self.log_path, row)
        return row

    def score(self, arch: Arch, recal: list[torch.Tensor] | None = None) -> tuple[float, float]:
        """Top-1 and loss of ``arch`` with supernet weights, BN recalibrated on ``recal`` (default: the fixed
        batches)."""
        net = self.supernet.extract(arch)
        recalibrate_bn(net, self.recal if recal is None else recal, self.device)
        return score(net, self.val_loader, self.device)


def repair(arch: Arch, space: SearchSpace, table: LatencyTable, objective: Objective, rng: random.Random) -> Arch:
    """``arch`` made to meet a hard target: random blocks re-drawn among the choices that are faster there.

    Uniform sampling alone almost never meets a tight target (half of MixNet-S's latency: not one in
    10,000 here), so a random feasible net is a uniform draw repaired this way; the procedure knows
    nothing of accuracy. Ends because the all-fastest net meets any target :func:`check_target` accepts.
    """
    arch = list(space.canonical(arch))
    at = [space.choices_at(i) for i in range(len(arch))]  # built once: a repair can take many rounds

    def faster(i: int) -> list[BlockChoice]:
        row = table.entries[i]
        now = row[choice_key(arch[i])]
        return [c for c in at[i] if row[choice_key(c)] < now]

    while not objective.feasible(table.predict(tuple(arch))):
        i = rng.randrange(len(arch))
        options = faster(i)
        if options:
            arch[i] = rng.choice(options)
            arch = list(space.canonical(tuple(arch)))
        elif not any(faster(j) for j in range(len(arch))):
            raise ValueError(
                f"no faster choice left, yet the net is over the target: the table ({table.fastest():.3f} "
                f"{table.unit} at its fastest) does not fit this search space"
            )
    return tuple(arch)


def _feasible_sample(space: SearchSpace, table: LatencyTable, objective: Objective, rng: random.Random) -> Arch:
    return repair(space.sample(rng), space, table, objective, rng)


def random_search(
    space: SearchSpace, table: LatencyTable, objective: Objective, evaluate: Callable, budget: int, seed: int
) -> list[dict]:
    """``budget`` distinct candidates drawn uniformly (feasible ones under a hard target), evaluated."""
    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    for _ in range(100 * budget):
        if len(rows) == budget:
            break
        arch = _feasible_sample(space, table, objective, rng)
        if arch_key(arch) not in rows:
            rows[arch_key(arch)] = evaluate(arch, "random") | {"method": "random"}
    if len(rows) < budget:
        raise ValueError(f"could not draw {budget} distinct feasible nets: the space is too small for this budget")
    return list(rows.values())


def evolution_search(
    space: SearchSpace,
    table: LatencyTable,
    objective: Objective,
    evaluate: Callable,
    *,
    population: int,
    generations: int,
    seed: int,
    mutate_prob: float = 0.1,
) -> list[dict]:
    """SPOS's evolution: ``population x generations`` distinct evaluated candidates in all."""
    rng = random.Random(seed + 1)
    seen: dict[str, tuple[Arch, dict]] = {}

    def add(arch: Arch) -> None:
        key = arch_key(arch)
        if key not in seen and objective.feasible(table.predict(arch)):
            seen[key] = (arch, evaluate(arch, "evolution") | {"method": "evolution"})

    while len(seen) < population:
        add(_feasible_sample(space, table, objective, rng))
    for _ in range(generations - 1):
        ranked = sorted(seen.values(), key=lambda t: t[1]["reward"], reverse=True)
        parents = [a for a, _ in ranked[: max(2, population // 2)]]
        target = len(seen) + population
        tries = 0
        while len(seen) < target and tries < 100 * population:
            tries += 1
            if rng.random() < 0.5:
                p = rng.choice(parents)
                child = tuple(
                    rng.choice(space.choices_at(i)) if rng.random() < mutate_prob else c for i, c in enumerate(p)
                )
                child = space.redraw_depths(child, rng, mutate_prob)
            else:
                a, b = rng.sample(parents, 2)
                child = tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b, strict=True))
            add(repair(space.canonical(child), space, table, objective, rng))
    return [row for _, row in seen.values()]


def best(rows: list[dict]) -> dict:
    """The row with the highest reward; ties go to the lower held-out loss (rows without one rank last)."""
    return max(rows, key=lambda r: (r["reward"], -r.get("loss", math.inf)))

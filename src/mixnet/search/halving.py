"""Successive halving over short standalone trainings: a search strategy that needs no supernet.

``mixnet search --strategy halving`` draws ``halving_nets`` distinct feasible nets the way random search draws
them (a uniform draw repaired to meet the target), trains every one standalone for ``halving_epochs`` epochs
(rung 0), keeps the best ``1 / halving_eta`` by held-out top-1, trains the survivors again from scratch for
``halving_eta`` times as many epochs, and so on until one net is left: successive halving (Jamieson and
Talwalkar 2016), the inner loop of Hyperband (Li et al. 2017). Each rung trains from scratch rather than
continuing the last one, since a cosine schedule of n epochs is not the start of one of 2n.

Every net is scored by what the final comparison measures, a trained net's top-1, so the strategy has no
weight-sharing bias; its cost is real training, about ``halving_nets x halving_epochs`` epochs per rung. The
rungs train with a seed of their own, never one of the retraining seeds: on the built-in sets the split is
drawn from the seed, so the images the selection looked at are not the ones the retrained nets are judged
on (with a folder's fixed val split they are the same images, a selection bias the report cannot remove).

Rung 0 is a sample of random feasible nets trained alike; it gives the baselines the found net is retrained
against, as the ranking check does for the supernet: among the other rung-0 nets, the one of median top-1 and
the one with the most MACs. Each standalone run is a row of ``halving.jsonl``; a resumed search trains only
what is missing.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from mixnet.experiment.rows import read_runs, write_json
from mixnet.models.archfile import save_arch
from mixnet.models.complexity import config_complexity
from mixnet.search.evolve import Objective, arch_key
from mixnet.search.latency import LatencyTable
from mixnet.search.ranking import feasible_nets, median_net
from mixnet.search.space import SearchSpace
from mixnet.search.standalone import StandaloneRun, train_config, train_standalone

HALVING, HALVING_ROWS, HALVING_DIR = "halving.json", "halving.jsonl", "halving"
_SEED_OFFSET = 104_729  # the rungs' draws and training seed are not the searches' or the ranking check's


def rung_sizes(nets: int, eta: int) -> list[int]:
    """How many nets each rung trains: ``nets``, then ``ceil(previous / eta)``, down to 1 (not trained)."""
    sizes = [nets]
    while sizes[-1] > 1:
        sizes.append(math.ceil(sizes[-1] / eta))
    return sizes[:-1]


def halving_seed(cfg) -> int:
    """The rungs' training seed: the search seed moved past every retraining seed."""
    return max(cfg.seeds) + 1 + cfg.seed + _SEED_OFFSET


def halving_search(
    cfg, space: SearchSpace, table: LatencyTable, target: float, out: Path, num_classes: int, log
) -> dict:
    """Runs (or resumes) the rungs; writes ``halving.json`` (rungs, baselines) and returns its summary, whose
    ``found`` is the last survivor as a search row (``arch``, ``top1``, ``latency``, ``reward``, ``method``).

    Raises:
        RuntimeError: a net failed to train (its error is in ``halving.jsonl``).
    """
    objective = Objective(target, cfg.w, cfg.hard)
    nets = feasible_nets(space, table, objective, cfg.halving_nets, cfg.seed + _SEED_OFFSET)
    seed = halving_seed(cfg)
    folder = out / HALVING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rows_path = out / HALVING_ROWS
    done = read_runs(rows_path)
    facts = {}
    for i, arch in enumerate(nets):
        name = f"net{i:02d}"
        config = space.config(arch)
        path = folder / f"{name}.json"
        if not path.exists():
            save_arch(path, config, name, {"drawn_for": "successive halving", "arch": arch_key(arch)})
        cost = config_complexity(config, cfg.img_size, num_classes=num_classes)
        facts[name] = {"net": name, "arch": arch_key(arch), "latency": table.predict(arch)}
        facts[name] |= {"macs": cost.macs, "params": cost.params}
    alive, rungs = list(facts), []
    for rung, _ in enumerate(rung_sizes(len(nets), cfg.halving_eta)):
        epochs = cfg.halving_epochs * cfg.halving_eta**rung
        todo = []
        for name in alive:
            run = f"r{rung}-{name}"
            if done.get(run, {}).get("status") != "ok":
                run_dir = folder / run
                make = functools.partial(
                    train_config, cfg, run_dir, seed, arch=str(folder / f"{name}.json"), epochs=epochs
                )
                row = {"run": run, "rung": rung, "epochs": epochs, **facts[name]}
                todo.append(StandaloneRun(run_dir, make, row, facts[name]["macs"]))
        done |= train_standalone(cfg, todo, rows_path, log, f"halving: rung {rung} ({epochs} epoch(s))")
        scores = {}
        for name in alive:
            row = done[f"r{rung}-{name}"]
            if row.get("status") != "ok":
                raise RuntimeError(f"successive halving: r{rung}-{name} failed to train: {row.get('error')}")
            scores[name] = row["top1"]
        keep = math.ceil(len(alive) / cfg.halving_eta)
        # The search's reward (top-1 under a hard target); ties go to the cheaper net, then the earlier draw.
        reward = {n: objective(scores[n], facts[n]["latency"]) for n in alive}
        ranked = sorted(alive, key=lambda n: (-reward[n], facts[n]["latency"], n))
        rungs.append({"rung": rung, "epochs": epochs, "top1": scores, "kept": ranked[:keep]})
        log(f"halving: rung {rung} ({epochs} epoch(s)) keeps {', '.join(ranked[:keep])} of {len(alive)}")
        alive = ranked[:keep]
    winner = alive[0]
    last = rungs[-1]
    first = [facts[n] | {"run": n, "top1": rungs[0]["top1"][n]} for n in facts]
    others = [r for r in first if r["run"] != winner]  # a baseline is never the found net itself
    summary = {
        "nets": len(nets),
        "eta": cfg.halving_eta,
        "first_epochs": cfg.halving_epochs,
        "seed": seed,
        "epochs_trained": sum(r["epochs"] * len(r["top1"]) for r in rungs),
        "rungs": rungs,
        "random_median": median_net(others)["run"],
        "macs_pick": max(others, key=lambda r: (r["macs"], r["top1"]))["run"],
        "found": {
            "arch": facts[winner]["arch"],
            "net": winner,
            "top1": last["top1"][winner],
            "latency": facts[winner]["latency"],
            "reward": objective(last["top1"][winner], facts[winner]["latency"]),
            "method": "halving",
        },
        "first_rung": first,
    }
    write_json(out / HALVING, summary)
    return summary


def halving_lines(summary: dict) -> list[str]:
    """The report's section on the rungs."""
    lines = [
        "## The rungs",
        "",
        f"{summary['nets']} nets drawn as random search draws them, each rung training its nets "
        f"standalone from scratch (seed {summary['seed']}, not a retraining seed) and keeping the best "
        f"1/{summary['eta']} by the search's reward; "
        f"{summary['epochs_trained']} epochs of training in all.",
        "",
        "| rung | epochs | nets | held-out top-1 (%), best to worst | kept |",
        "|---|---|---|---|---|",
    ]
    for r in summary["rungs"]:
        ordered = sorted(r["top1"].values(), reverse=True)
        lines.append(
            f"| {r['rung']} | {r['epochs']} | {len(r['top1'])} | {' / '.join(f'{v:.1f}' for v in ordered)} "
            f"| {', '.join(r['kept'])} |"
        )
    lines += [
        "",
        f"Baselines from rung 0 (random nets trained alike), the found net left out: the median net "
        f"{summary['random_median']}, the MACs pick {summary['macs_pick']}.",
        "",
    ]
    return lines

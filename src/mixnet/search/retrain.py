"""After the search: the winners retrained from scratch beside the skeleton scaled to the same latency.

Three nets are trained with the same recipe and seeds: the evolution's best, the random search's best, and
the skeleton (MixNet-S) with the width multiplier whose measured latency is closest to the found net's.
Their end-to-end latency is measured interleaved in one session (in the search's runtime; counted for
the MACs proxy), and the report says whether the search
won, with the spread over seeds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mixnet.search.latency import UNITS, measure_configs
from mixnet.search.space import Arch, SearchSpace

WIDTHS = tuple(round(0.25 + 0.05 * i, 2) for i in range(16))  # 0.25 .. 1.0


def _rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["run"]] = row
    return rows


def matched_width(cfg, space: SearchSpace, found_config) -> tuple[float, float, dict[float, float]]:
    """The skeleton's width whose latency (in the search's runtime) is closest to the found net's:
    (width, found's latency, width -> latency)."""
    configs = [found_config] + [space.base.replace(width_mult=w) for w in WIDTHS]
    ms = measure_configs(configs, runtime=cfg.runtime, img_size=cfg.img_size, batch=cfg.batch, threads=cfg.threads)
    by_width = dict(zip(WIDTHS, ms[1:], strict=True))
    width = min(WIDTHS, key=lambda w: abs(by_width[w] - ms[0]))
    return width, ms[0], by_width


def train_config(cfg, run_dir: Path, seed: int, arch: str | None = None, width: float | None = None):
    """The retraining recipe (the small study's): short preset, cluttered-digits settings."""
    from mixnet.train.config import TrainConfig

    return TrainConfig.from_preset(
        "short",
        data=cfg.data,
        img_size=cfg.img_size,
        model=cfg.skeleton,
        arch=arch,
        width_mult=width,
        epochs=cfg.retrain_epochs,
        batch_size=64,
        lr=0.006,
        hflip=0.0,
        crop_scale=tuple(cfg.crop_scale),
        crop_pct=cfg.crop_pct,
        ema_decay=0.99,
        seed=seed,
        threads=cfg.train_threads,
        workers=cfg.workers,
        device=cfg.device,
        out=str(run_dir),
        progress=False,
    )


def retrain_and_report(cfg, space: SearchSpace, result, archs: dict[str, Arch], log) -> None:
    """Retrains the three nets over the seeds (resumable), measures them, writes the plot and the report."""
    from mixnet.train.loop import train

    out = result.out
    found_config = space.config(archs[result.found["arch"]])
    match_path = out / "matched_width.json"
    if match_path.exists():
        match = json.loads(match_path.read_text())
    else:
        width, found, by_width = matched_width(cfg, space, found_config)
        match = {"width": width, "found": found, "by_width": {str(k): v for k, v in by_width.items()}}
        match_path.write_text(json.dumps(match, indent=2) + "\n")
    unit = UNITS[cfg.runtime]
    log(f"{cfg.skeleton} at width {match['width']} is closest to the found net's {match['found']:.3f} {unit}")
    nets = {
        "found": {"arch": str(out / "found.json")},
        "random_best": {"arch": str(out / "random_best.json")},
        f"{cfg.skeleton}_w{match['width']}": {"width": match["width"]},
    }
    results_path = out / "retrain.jsonl"
    done = _rows(results_path)
    for seed in cfg.seeds:
        for name, spec in nets.items():
            run = f"{name}-s{seed}"
            if done.get(run, {}).get("status") == "ok":
                continue
            run_dir = out / "retrain" / run
            config = train_config(cfg, run_dir, seed, **spec)
            if (run_dir / "last.pth").exists():
                config = config.replace(resume=str(run_dir / "last.pth"))
            log(f"retraining {run} ...")
            t0 = time.perf_counter()
            try:
                res = train(config)
                final = res.history[-1]
                row = {
                    "run": run,
                    "net": name,
                    "seed": seed,
                    "status": "ok",
                    "top1": final.get("ema_val_top1", final["val_top1"]),
                }
            except Exception as e:  # noqa: BLE001 - recorded; the others still train
                row = {"run": run, "net": name, "seed": seed, "status": "failed", "error": f"{type(e).__name__}: {e}"}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            with open(results_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            log(f"{run}: {row.get('top1', row.get('error'))}")
    configs = [
        found_config,
        space.config(archs[result.random_best["arch"]]),
        space.base.replace(width_mult=match["width"]),
    ]
    ms = measure_configs(configs, runtime=cfg.runtime, img_size=cfg.img_size, batch=cfg.batch, threads=cfg.threads)
    latency = dict(zip(nets, ms, strict=True))
    (out / "final_latency.json").write_text(json.dumps(latency, indent=2) + "\n")
    from mixnet.search.report import write_search_report

    write_search_report(out)

"""The kernel study's pilot on the cued digits: which skeleton and recipe, and does kernel size matter there?

Trains short runs in parallel (one thread each, ``mixnet train`` subprocesses) and writes every run's
learning curve to ``pilot.json`` with a plot of held-out top-1 against kernel size and the baseline's
curves per learning rate. The recipe of the ``small`` study is chosen from the k3 runs alone, then frozen.

    python benchmarks/study_pilot.py --round 1 --out OUT --jobs 16   # then --round 2

A run that does not finish within ``--run-timeout`` keeps the epochs it completed (marked unfinished).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mixnet.atomic import write_json
from mixnet.models.archfile import save_arch
from mixnet.models.configs import MixNetConfig
from mixnet.plotting import pyplot, save_figure

# Two skeletons of MobileNetV2 at width 0.35 for 48 px inputs, strides cut so most depthwise convs act on
# 12x12 or larger maps (a MobileNetV2 at 48 px would run most of them on 3x3 or less).
SKELETONS = {
    "deep": [
        ["r1_k3_a1_p1_s11_e1_i32_o16"],
        ["r2_k3_a1_p1_s22_e6_i16_o24"],
        ["r4_k3_a1_p1_s11_e6_i24_o32"],
        ["r2_k3_a1_p1_s22_e6_i32_o64"],
    ],
    "shallow": [
        ["r1_k3_a1_p1_s11_e1_i32_o16"],
        ["r2_k3_a1_p1_s22_e6_i16_o24"],
        ["r2_k3_a1_p1_s11_e6_i24_o32"],
        ["r1_k3_a1_p1_s22_e6_i32_o64"],
    ],
}
# (skeleton, kernels, width or None, lr, epochs). Round 1: both skeletons, a coarse lr grid for k3 and the
# kernel sizes at one middle setting; round 2: the k3 recipe grid at higher lrs on the shallow skeleton (the
# cheaper one, whose top-1 depended most on kernel size in round 1) and the kernels at two candidate recipes.
ROUND1 = [
    ("deep", "k3", None, 0.002, 10),
    ("deep", "k3", None, 0.004, 10),
    ("deep", "k3", None, 0.008, 10),
    ("deep", "k3", None, 0.004, 20),
    ("deep", "k3", None, 0.008, 20),
    ("deep", "k5", None, 0.004, 10),
    ("deep", "k7", None, 0.004, 10),
    ("deep", "k9", None, 0.004, 10),
    ("deep", "k3.5.7", None, 0.004, 10),
    ("deep", "k3", 0.5, 0.004, 10),
    ("shallow", "k3", None, 0.004, 10),
    ("shallow", "k5", None, 0.004, 10),
    ("shallow", "k7", None, 0.004, 10),
    ("shallow", "k9", None, 0.004, 10),
    ("shallow", "k3", None, 0.004, 20),
    ("shallow", "k3", None, 0.008, 10),
]
ROUND2 = [
    *[("shallow", "k3", None, lr, ep) for lr in (0.008, 0.016, 0.032) for ep in (8, 12, 16)],
    *[("shallow", k, None, 0.016, 12) for k in ("k5", "k7", "k9", "k3.5.7")],
    ("deep", "k3", None, 0.016, 12),
    ("deep", "k7", None, 0.016, 12),
    ("shallow", "k3", 0.5, 0.016, 12),
]
ROUNDS = {1: ROUND1, 2: ROUND2}


def run_name(skeleton: str, kernels: str, width: float | None, lr: float, epochs: int) -> str:
    return f"{skeleton}-{kernels}" + (f"-w{width:g}" if width else "") + f"-lr{lr:g}-e{epochs}"


def train(out: Path, arch: Path, spec: tuple, timeout: float) -> dict:
    skeleton, kernels, width, lr, epochs = spec
    name = run_name(*spec)
    folder = out / "runs" / name
    cmd = [sys.executable, "-m", "mixnet.cli", "train", "--arch", str(arch), "--kernels", kernels]
    cmd += ["--data", "cued-digits", "--preset", "short", "--lr", str(lr), "--epochs", str(epochs)]
    cmd += ["--batch-size", "64", "--ema-decay", "0.99", "--threads", "1", "--workers", "0", "--no-progress"]
    cmd += ["--out", str(folder)] + (["--width-mult", str(width)] if width else [])
    start = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        finished = proc.returncode == 0
        tail = (proc.stdout + proc.stderr)[-400:]
    except subprocess.TimeoutExpired:
        finished, tail = False, "timed out"
    history = []
    metrics = folder / "metrics.jsonl"
    if metrics.is_file():
        history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return {
        "name": name,
        "skeleton": skeleton,
        "kernels": kernels,
        "width_mult": width,
        "lr": lr,
        "epochs": epochs,
        "finished": finished,
        "wall_s": round(time.time() - start, 1),
        "history": [
            {k: h.get(k) for k in ("epoch", "train_loss", "val_top1", "ema_val_top1", "epoch_seconds")} for h in history
        ],
        "log_tail": "" if finished else tail,
    }


def plot(results: list[dict], path: Path, lr: float, epochs: int) -> None:
    """Top-1 against single kernel size at one (lr, epochs), and the k3 runs' learning curves."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for skeleton in SKELETONS:
        pts = sorted(
            (int(r["kernels"][1:]), r["history"][-1]["ema_val_top1"])
            for r in results
            if r["skeleton"] == skeleton
            and r["history"]
            and r["width_mult"] is None
            and "." not in r["kernels"]
            and (r["lr"], r["epochs"]) == (lr, epochs)
        )
        if len(pts) > 1:
            ax1.plot(*zip(*pts, strict=True), "o-", label=f"{skeleton} skeleton")
    ax1.set(xlabel="kernel size (one size in every depthwise conv)", ylabel="held-out top-1 (%), EMA weights")
    ax1.set_title(f"top-1 vs kernel size: one seed, {epochs} epochs, lr {lr:g}", fontsize=9)
    ax1.legend(fontsize=8)
    for r in results:
        if r["kernels"] == "k3" and r["width_mult"] is None and r["history"]:
            ep = [h["epoch"] for h in r["history"]]
            label = f"{r['skeleton']} lr {r['lr']:g}, {r['epochs']} ep"
            ax2.plot(ep, [h["ema_val_top1"] for h in r["history"]], label=label)
    ax2.set(xlabel="epoch", ylabel="held-out top-1 (%), EMA weights")
    ax2.set_title("k3 learning curves (cosine schedule over each run's epochs)", fontsize=9)
    ax2.legend(fontsize=6, ncol=2)
    save_figure(fig, path)


PLOTTED = {1: (0.004, 10), 2: (0.016, 12)}  # the (lr, epochs) at which each round ran every kernel size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--run-timeout", type=float, default=540.0)
    p.add_argument("--round", type=int, choices=sorted(ROUNDS), default=1)
    p.add_argument("--smoke", action="store_true", help="two one-epoch runs: checks the script, measures nothing")
    p.add_argument("--replot", type=Path, help="redraw the figure of a saved pilot.json (beside it, .png)")
    args = p.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text())["runs"], args.replot.with_suffix(".png"), *PLOTTED[args.round])
        return
    runs = [(s, k, w, lr, 1) for s, k, w, lr, _ in ROUND1[-2:]] if args.smoke else ROUNDS[args.round]
    if args.out is None:
        p.error("--out is required unless --replot")
    args.out.mkdir(parents=True, exist_ok=True)
    archs = {}
    for name, stages in SKELETONS.items():
        config = MixNetConfig.from_strings(
            stages, stem_channels=32, head_channels=256, width_mult=0.35, activation="relu6"
        )
        archs[name] = save_arch(args.out / f"{name}.json", config, name=f"mobilenet_v2_cue_{name}")
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: train(args.out, archs[s[0]], s, args.run_timeout), runs))
    write_json(
        args.out / "pilot.json",
        {"command": " ".join(sys.argv), "wall_s": round(time.time() - start, 1), "runs": results},
    )
    plot(results, args.out / "pilot.png", *(PLOTTED[args.round] if not args.smoke else (0.004, 1)))
    for r in results:
        last = r["history"][-1] if r["history"] else {}
        print(
            f"{r['name']:32s} {'ok ' if r['finished'] else 'CUT'} ep {last.get('epoch')} "
            f"ema top-1 {last.get('ema_val_top1')} wall {r['wall_s']}s"
        )


if __name__ == "__main__":
    main()

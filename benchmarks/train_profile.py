"""Where a CPU training step of mixnet_s spends its time: ours against timm's, both channels_last.

``torch.profiler`` over ``--steps`` SGD steps (forward, cross-entropy, backward, update) after two warmup
steps; operators are grouped into what they do (convolution forward / backward, BatchNorm forward /
backward, activations, layout copies, concatenation, the rest) and shown as seconds per step and share.
The memory-bound groups (BatchNorm, activations, copies, concatenation) are what no choice of
convolution kernel can speed up.

    .venv/bin/python benchmarks/train_profile.py --out docs/bench/train_profile.md
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import timm
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mixnet import create_model
from mixnet.bench.suite import machine_info

GROUPS = {
    "convolution backward": ("convolution_backward",),
    "convolution forward": ("mkldnn_convolution", "_convolution_depthwise", "thnn_conv", "conv_depthwise"),
    "BatchNorm backward": ("batch_norm_backward",),
    "BatchNorm forward": ("native_batch_norm", "_batch_norm_with_update", "batch_norm_update_stats"),
    "activations (ReLU, swish, sigmoid) fwd+bwd": ("silu", "threshold_backward", "clamp_min", "relu", "sigmoid"),
    "layout copies": ("aten::copy_", "aten::contiguous", "aten::clone"),
    "concatenation": ("aten::cat",),
    "elementwise mul/add (SE, residual, optimizer)": (
        "aten::mul",
        "aten::add",
        "aten::add_",
        "aten::mul_",
        "aten::div",
    ),
}


def group_of(name: str) -> str:
    """The group of an ATen operator name (``other`` when none matches)."""
    for group, keys in GROUPS.items():
        if any(k in name for k in keys):
            return group
    return "other"


def step_profile(model: nn.Module, batch: int, size: int, steps: int) -> dict[str, float]:
    """Seconds per step by group (self CPU time of every operator), plus ``total``."""
    cl = torch.channels_last
    model = model.train().to(memory_format=cl)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=cl)
    y = torch.randint(0, 1000, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    out: dict[str, float] = collections.defaultdict(float)
    for e in prof.key_averages():
        out[group_of(e.key)] += e.self_cpu_time_total / 1e6 / steps
    out["total"] = sum(out.values())
    return dict(out)


def main() -> None:
    """Profiles both models and prints (or writes) the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {
        "ours mixnet_s": step_profile(create_model("mixnet_s"), args.batch_size, args.img_size, args.steps),
        "timm mixnet_s": step_profile(timm.create_model("mixnet_s"), args.batch_size, args.img_size, args.steps),
    }
    info = machine_info(args.threads)
    cmd = "`.venv/bin/python benchmarks/train_profile.py" + (f" --out {args.out}`" if args.out else "`")
    lines = [
        f"{info['cpu']}, {args.threads} threads, torch {info['torch']}, timm {info['timm']}; batch "
        f"{args.batch_size}, {args.img_size} px, channels_last, SGD; {args.steps} profiled steps. Command: {cmd}",
        "",
        "Self CPU time per step by operator group (profiling adds overhead; the total is not a clean step time).",
        "",
        "| group | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    groups = [*GROUPS, "other"]
    for g in groups:
        cells = [f"{r.get(g, 0):.3f} s ({100 * r.get(g, 0) / r['total']:.0f}%)" for r in results.values()]
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{r['total']:.3f} s**" for r in results.values()) + " |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

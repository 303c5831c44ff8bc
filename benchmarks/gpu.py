"""GPU training and inference images/s of ours vs timm, AMP bf16 and channels_last, interleaved.

One prepared run for a machine with a CUDA GPU (the 2-core development VMs have none):

    .venv/bin/python benchmarks/gpu.py --out docs/bench/gpu

Contenders per model, all in channels_last under ``torch.autocast("cuda", torch.bfloat16)``:
- training (forward + backward + SGD step, batch ``--train-batch`` at ``--train-size`` px): timm, timm (A/A),
  ours, ours with ``fuse_mixconv=True`` (one depthwise conv per MixConv, the split form's gradients), and
  with ``--compile`` each of those under ``torch.compile``;
- inference (batch ``--infer-batch`` at 224 px): timm, ours, ours optimized (:func:`mixnet.optimize_for_inference`).

Every call ends with ``torch.cuda.synchronize()`` so the timed region holds the GPU work. Writes ``gpu.csv``
and ``gpu.md`` (machine, versions, command, images/s and the ratio to timm in the same run) into ``--out``.
``--device cpu`` runs the same code on the CPU at a tiny size (how the script is tested without a GPU).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from mixnet import create_model, optimize_for_inference
from mixnet.io.convert import from_timm
from mixnet.measure.machine import machine_info
from mixnet.measure.output import emit, write_dataclass_csv
from mixnet.measure.runners import sgd_step_runner, torch_runner
from mixnet.measure.timing import interleaved_medians


@dataclass
class GpuRow:
    """One contender of one model and kind."""

    model: str
    kind: str
    contender: str
    batch: int
    img_size: int
    amp: str
    images_per_s: float
    vs_timm: float


def _amp(on: bool) -> torch.dtype | None:
    return torch.bfloat16 if on else None


def training_contenders(name: str, batch: int, size: int, device: torch.device, amp: bool, compile_: bool) -> dict:
    """Training steps of timm's and our ``name`` (timm's weights copied into ours), channels_last."""
    import timm

    cl = torch.channels_last
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=cl)
    y = torch.randint(0, 1000, (batch,), device=device)
    ref = timm.create_model(name)
    nets = {
        "timm": ref,
        "timm (A/A)": timm.create_model(name),
        "ours": create_model(name),
        "ours fused": create_model(name, fuse_mixconv=True),
    }
    for key in ("ours", "ours fused"):
        nets[key].load_state_dict(from_timm(ref.state_dict()))
    out = {}
    for key, net in nets.items():
        net = net.to(device).train().to(memory_format=cl)
        out[key] = sgd_step_runner(net, x, y, amp_dtype=_amp(amp))
        if compile_:
            out[key + " compiled"] = sgd_step_runner(torch.compile(net), x, y, amp_dtype=_amp(amp))
    return out


def inference_contenders(name: str, batch: int, size: int, device: torch.device, amp: bool) -> dict:
    """Forward passes of timm's model, ours and our optimized rewrite (same weights), channels_last."""
    import timm

    cl = torch.channels_last
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=cl)
    ref = timm.create_model(name).eval()
    ours = create_model(name).eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    optimized = optimize_for_inference(ours, img_size=size)
    nets = {"timm": ref, "ours": ours, "ours optimized": optimized}
    return {key: torch_runner(net.to(device).to(memory_format=cl), x, amp_dtype=_amp(amp)) for key, net in nets.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mixnet_s", "mixnet_m"])
    p.add_argument("--device", default="cuda", help="cuda (the measurement) or cpu (a smoke run)")
    p.add_argument("--train-batch", type=int, default=256)
    p.add_argument("--train-size", type=int, default=224)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--infer-size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also each training contender under torch.compile")
    p.add_argument("--out", default="runs/gpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run this script on a GPU machine (or --device cpu for a smoke run)", file=sys.stderr)
        return 2
    amp = not args.no_amp
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for name in args.models:
        for kind, batch, size, contenders in (
            (
                "training",
                args.train_batch,
                args.train_size,
                training_contenders(name, args.train_batch, args.train_size, device, amp, args.compile),
            ),
            (
                "inference",
                args.infer_batch,
                args.infer_size,
                inference_contenders(name, args.infer_batch, args.infer_size, device, amp),
            ),
        ):
            print(f"{name} {kind} batch {batch} at {size} px ...", flush=True)
            medians = interleaved_medians(contenders, rounds=args.rounds, iters=3, warmup=3)
            for key, s in medians.items():
                precision = "bf16" if amp else "fp32"
                rows.append(
                    GpuRow(name, kind, key, batch, size, precision, round(batch / s, 1), round(medians["timm"] / s, 3))
                )
    out = Path(args.out)
    write_dataclass_csv(out / "gpu.csv", rows, GpuRow)
    info = machine_info(torch.get_num_threads())
    command = "python benchmarks/gpu.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {info.get('gpu', info['cpu'])}; "
        + ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("gpu", "threads")),
        "",
        f"Command: `{command}`",
        "",
        "Medians of interleaved rounds; channels_last; ratio = images/s over timm's in the same run; the A/A row "
        "is timm measured twice (its distance from 1.00 is the noise).",
        "",
        "| model | kind | contender | batch | px | precision | images/s | vs timm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.kind} | {r.contender} | {r.batch} | {r.img_size} | {r.amp} | {r.images_per_s} | "
        f"{r.vs_timm:.2f}x |"
        for r in rows
    ]
    emit("\n".join(lines) + "\n", out / "gpu.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

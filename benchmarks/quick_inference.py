"""Whole-model CPU inference speed: ours optimized vs timm, in PyTorch and in ONNX Runtime.

For each model and batch size, times these contenders interleaved (each round runs every contender
once; medians over rounds; /work/shared/BENCHMARKING.md), all fp32 at the same thread count:
- ``timm_eager``: timm's model, eager PyTorch, NCHW (and ``timm_eager_again``, the same model again as
  the A-vs-A sanity check: its ratio must be near 1.0 or the run measured interference);
- ``timm_cl``: timm's model in channels_last (for context);
- ``ours_opt``: ``mixnet.optimize_for_inference(model)`` (channels_last, fused MixConv, folded BN);
- ``timm_ort`` / ``ours_ort``: timm's ONNX export and ``mixnet.export.to_onnx`` (optimized) in ONNX
  Runtime, same threads, spinning off.
Weights are random (speed does not depend on them). Prints a markdown table with images/s and ratios.

    .venv/bin/python benchmarks/quick_inference.py --models mixnet_s mixnet_m mixnet_l --batch 1 8 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import platform
import tempfile
import warnings
from functools import partial
from pathlib import Path

import torch


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    """Runs the benchmark and prints the table."""
    import onnxruntime
    import timm

    import mixnet
    from mixnet.export import ort_session, to_onnx
    from mixnet.optimize import optimize_for_inference
    from mixnet.timing import interleaved_medians

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["mixnet_s", "mixnet_m", "mixnet_l"], help="registered names")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes")
    ap.add_argument("--img-size", type=int, default=224, help="input resolution")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch and ONNX Runtime intra-op threads")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    ap.add_argument("--iters", type=int, default=2, help="calls per contender per round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    print(
        f"CPU: {_cpu_name()}; {args.threads} threads; torch {torch.__version__}, timm {timm.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; fp32, {args.img_size}px, {args.rounds} rounds x {args.iters} calls\n"
    )
    cols = ["timm_eager", "timm_eager_again", "timm_cl", "ours_opt", "timm_ort", "ours_ort"]
    print(
        "| model | batch | "
        + " | ".join(f"{c} img/s" for c in cols)
        + " | A/A | ours_opt/timm_eager | ours_ort/timm_ort |"
    )
    print("|---" * (len(cols) + 5) + "|")
    tmp = Path(tempfile.mkdtemp(prefix="mixnet_bench_"))
    s = args.img_size
    for name in args.models:
        ours = mixnet.create_model(name).eval()
        theirs = timm.create_model(name).eval()
        theirs_cl = copy.deepcopy(theirs).to(memory_format=torch.channels_last)
        opt = optimize_for_inference(ours, img_size=s)
        to_onnx(ours, tmp / f"{name}_ours.onnx", img_size=s)
        # timm's model through the same exporter, no rewrite: what a timm user gets from torch.onnx.
        to_onnx(theirs, tmp / f"{name}_timm.onnx", img_size=s, optimize=False)
        sess_ours = ort_session(tmp / f"{name}_ours.onnx", args.threads)
        sess_timm = ort_session(tmp / f"{name}_timm.onnx", args.threads)
        for batch in args.batch:
            x = torch.randn(batch, 3, s, s)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            xn = x.numpy()
            with torch.inference_mode():
                contenders = {
                    "timm_eager": partial(theirs, x),
                    "timm_eager_again": partial(theirs, x),
                    "timm_cl": partial(theirs_cl, x_cl),
                    "ours_opt": partial(opt, x),
                    "timm_ort": partial(sess_timm.run, None, {"input": xn}),
                    "ours_ort": partial(sess_ours.run, None, {"input": xn}),
                }
                t = interleaved_medians(contenders, rounds=args.rounds, iters=args.iters, pause_s=0.01, progress=True)
            ips = {k: batch / v for k, v in t.items()}
            print(
                f"| {name} | {batch} | "
                + " | ".join(f"{ips[c]:.1f}" for c in cols)
                + f" | {t['timm_eager'] / t['timm_eager_again']:.2f} | {t['timm_eager'] / t['ours_opt']:.2f} | "
                f"{t['timm_ort'] / t['ours_ort']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Per-layer measurement behind the rules of ``mixnet.deploy.optimize``: fused vs split MixConv, merged 1x1.

For every distinct depthwise MixConv of mixnet_s/m/l at the given resolution (channels, kernel sizes,
stride, input size) this times, interleaved on the CPU with N threads:
- ``split``: split -> one depthwise conv per kernel size -> concat (every implementation's form);
- ``fused``: one depthwise conv of the largest kernel with the smaller kernels zero-padded and centered;
in NCHW and channels_last. For every grouped 1x1 conv it times ``split``, ``grouped`` (one conv,
groups=2) and ``dense`` (block-diagonal dense 1x1). Prints one markdown row per layer with the ratio
split/fused (> 1: fused faster), so the rule in ``mixnet.deploy.optimize`` can be read off the table.
The tables it printed, and the rules read off them, are in docs/inference.md.

    .venv/bin/python benchmarks/probes/layer_rules.py --threads 2 --batch-size 1 8
"""

from __future__ import annotations

import argparse
import copy
from functools import partial

import torch
from torch import nn

from mixnet import create_model
from mixnet.deploy.fuse import fuse_depthwise, merge_pointwise
from mixnet.layers import MixConv2d
from mixnet.measure.machine import machine_info
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians


def collect_layers(models: list[str], img_size: int) -> tuple[dict, dict]:
    """Distinct depthwise MixConvs and grouped 1x1 convs of ``models``: key -> (module, input shape)."""
    dw, pw = {}, {}
    for name in models:
        model = create_model(name).eval()
        shapes: dict[nn.Module, tuple] = {}
        hooks = [
            m.register_forward_hook(lambda mod, inp, out, s=shapes: s.__setitem__(mod, tuple(inp[0].shape)))
            for m in model.modules()
            if isinstance(m, MixConv2d)
        ]
        with torch.no_grad():
            model(torch.randn(1, 3, img_size, img_size))
        for h in hooks:
            h.remove()
        for m, shape in shapes.items():
            if len(m.convs) < 2:
                continue
            if m.depthwise:
                key = (shape[1], tuple(m.kernel_sizes), m.convs[0].stride[0], shape[2])
                dw.setdefault(key, (m, shape))
            else:
                key = (shape[1], sum(m.out_splits), shape[2])
                pw.setdefault(key, (m, shape))
    return dw, pw


def main() -> None:
    """Runs the sweep and prints the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["mixnet_s", "mixnet_m", "mixnet_l"], help="models to scan")
    ap.add_argument("--img-size", type=int, default=224, help="input resolution")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[1, 8], help="batch sizes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds per layer")
    args = ap.parse_args()
    print("# " + ", ".join(f"{k} {v}" for k, v in machine_info(args.threads).items()))
    dw, pw = collect_layers(args.model, args.img_size)
    cl = torch.channels_last
    with using_threads(args.threads), torch.inference_mode():
        for batch in args.batch_size:
            print(f"\n## depthwise MixConv, batch {batch}: ms (split / fused), ratio split/fused")
            print(
                "| C | kernels | stride | H | NCHW split | NCHW fused | NCHW ratio | CL split | CL fused | CL ratio |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|")
            for (c, ks, s, h), (m, shape) in sorted(dw.items(), key=lambda kv: (kv[0][3], kv[0][0])):
                fused = fuse_depthwise(list(m.convs))
                x = torch.randn(batch, *shape[1:])
                xc = x.contiguous(memory_format=cl)
                mc, fc = _cl_copy(m), fused.to(memory_format=cl)
                t = interleaved_medians(
                    {
                        "split": partial(m, x),
                        "fused": partial(fused, x),
                        "split_cl": partial(mc, xc),
                        "fused_cl": partial(fc, xc),
                    },
                    rounds=args.rounds,
                    iters=3,
                )
                print(
                    f"| {c} | {'.'.join(map(str, ks))} | {s} | {h} | {t['split'] * 1e3:.3f} | {t['fused'] * 1e3:.3f} | "
                    f"{t['split'] / t['fused']:.2f} | {t['split_cl'] * 1e3:.3f} | {t['fused_cl'] * 1e3:.3f} | "
                    f"{t['split_cl'] / t['fused_cl']:.2f} |",
                    flush=True,
                )
            print(f"\n## grouped 1x1 (2 groups), batch {batch}, channels_last: ms")
            print("| C in | C out | H | split | grouped | dense | best |")
            print("|---|---|---|---|---|---|---|")
            for (ci, co, h), (m, shape) in sorted(pw.items(), key=lambda kv: (kv[0][2], kv[0][0])):
                xc = torch.randn(batch, *shape[1:]).contiguous(memory_format=cl)
                variants = {"split": _cl_copy(m)}
                if len(set(m.in_splits)) == 1 and len(set(m.out_splits)) == 1:
                    variants["grouped"] = merge_pointwise(list(m.convs), m.in_splits, "grouped").to(memory_format=cl)
                variants["dense"] = merge_pointwise(list(m.convs), m.in_splits, "dense").to(memory_format=cl)
                t = interleaved_medians({k: partial(v, xc) for k, v in variants.items()}, rounds=args.rounds)
                cols = [f"{t[k] * 1e3:.3f}" if k in t else "-" for k in ("split", "grouped", "dense")]
                print(f"| {ci} | {co} | {h} | {' | '.join(cols)} | {min(t, key=t.get)} |", flush=True)


def _cl_copy(m: nn.Module) -> nn.Module:
    """A channels_last copy of ``m`` (the original stays NCHW for the NCHW columns)."""
    return copy.deepcopy(m).to(memory_format=torch.channels_last)


if __name__ == "__main__":
    main()

"""Which rewrite to export to ONNX: whole networks in ONNX Runtime and OpenVINO, interleaved.

``optimize_for_inference``'s per-layer rules were measured in PyTorch (``benchmarks/probes/layer_rules.py``),
where an NCHW depthwise conv with a big fused kernel is slow above 28x28 inputs. ONNX Runtime (NCHWc) and
OpenVINO (nChw16c) run convs in their own blocked layouts, so the export is measured here as a whole:
each variant of the rewrite is exported with ``to_onnx``'s exporter and timed in both runtimes at batch
1 and 8, all contenders of one model and batch interleaved in one run (medians; the A/A row is the
first variant measured twice). Variants:

- ``nchw rule``: the PyTorch NCHW rules (MixConvs on inputs above 28x28 stay split);
- ``fused``: every MixConv fused into one depthwise conv;
- ``fused, grouped``: fused, and every grouped 1x1 conv one ``groups=2`` conv (no block-diagonal dense
  1x1 for narrow groups); skipped for models whose grouped 1x1 convs have unequal splits.

    .venv/bin/python benchmarks/probes/onnx_rules.py --out docs/bench/onnx_rules.md
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mixnet import create_model
from mixnet.deploy.export import to_onnx
from mixnet.deploy.optimize import optimize_for_inference
from mixnet.measure.machine import machine_info
from mixnet.measure.output import emit
from mixnet.measure.runners import openvino_runner, ort_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians

VARIANTS = {
    "nchw rule": {"fuse_depthwise": "auto", "merge_pointwise": "auto"},
    "fused": {"fuse_depthwise": True, "merge_pointwise": "auto"},
    "fused, grouped": {"fuse_depthwise": True, "merge_pointwise": "grouped"},
}


class _Rewrite(torch.nn.Module):
    """A module whose export is ``optimize_for_inference(model, **options)`` (to_onnx re-optimizes
    MixNets; this hands it the finished rewrite instead, with ``optimize=False``)."""

    def __init__(self, model: torch.nn.Module, img_size: int, options: dict) -> None:
        super().__init__()
        self.net = optimize_for_inference(model, img_size=img_size, channels_last=False, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    """Exports every variant, times them and prints (or writes) the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["mixnet_s", "mixnet_m"])
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine_info(args.threads)
    lines = [
        f"Measured on {info['cpu']} ({args.threads} threads); torch {info['torch']}, onnxruntime "
        f"{info['onnxruntime']}, openvino {info['openvino']}; {args.img_size} px, fp32.",
        "",
        "Command: `.venv/bin/python benchmarks/probes/onnx_rules.py" + (f" --out {args.out}`" if args.out else "`"),
        "",
        "Images/s, medians of interleaved rounds; in brackets the speed relative to `nchw rule` in the same "
        "runtime (> 1: faster).",
        "",
        "| model | batch | variant | ORT | OpenVINO |",
        "|---|---|---|---|---|",
    ]
    with using_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        for name in args.model:
            torch.manual_seed(0)
            model = create_model(name).eval()
            files = {}
            for variant, options in VARIANTS.items():
                try:
                    wrapped = _Rewrite(model, args.img_size, options)
                except ValueError as e:  # a forced grouped merge on unequal splits
                    print(f"{name}: {variant} skipped ({e})", flush=True)
                    continue
                path = Path(tmp) / f"{name}-{variant.replace(', ', '-').replace(' ', '-')}.onnx"
                to_onnx(wrapped, path, img_size=args.img_size, optimize=False, threads=args.threads)
                files[variant] = path
            for batch in args.batch_size:
                x = torch.randn(batch, 3, args.img_size, args.img_size)
                runs = {}
                for variant, path in files.items():
                    runs[(variant, "ORT")] = ort_runner(path, x, args.threads)
                    runs[(variant, "OpenVINO")] = openvino_runner(path, x, args.threads)
                first = next(iter(files))
                runs[(first + " (A/A)", "ORT")] = ort_runner(files[first], x, args.threads)
                runs[(first + " (A/A)", "OpenVINO")] = openvino_runner(files[first], x, args.threads)
                med = interleaved_medians(runs, rounds=args.rounds, iters=3, settle=1, pause_s=0.01)
                for variant in [*files, first + " (A/A)"]:
                    cells = []
                    for runtime in ("ORT", "OpenVINO"):
                        t, base = med[(variant, runtime)], med[(first, runtime)]
                        cells.append(f"{batch / t:.1f} ({base / t:.2f}x)")
                    lines.append(f"| {name} | {batch} | {variant} | {cells[0]} | {cells[1]} |")
                print("\n".join(lines[-len(files) - 1 :]), flush=True)
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()

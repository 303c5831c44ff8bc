"""Probes of speed levers that did not pay, each an interleaved A-vs-B measurement (medians, images/s or us).

1. ``depthwise``: one block (1x1 expand, swish, depthwise MixConv, swish, 1x1 project) in OpenVINO with the
   MixConv as one fused conv, split per kernel size (split + convs + concat), split into groups padded to
   16 channels (aligned with OpenVINO's blocked layout), or two partially fused convs.
2. ``padding``: an expand/project pair with channel counts as MixNet-S has them against the same padded to
   multiples of 16 (extra zero channels), in OpenVINO.
3. ``ort-se``: whole MixNet-S in ONNX Runtime with the squeeze-excite gate expanded to full size by a nearest
   ``Resize`` (so the gate multiply has equal shapes, which ONNX Runtime's blocked kernels accept) and with
   its ``QuickGelu`` fusion of swish turned off (``Sigmoid`` + ``Mul`` stay in the blocked layout).
4. ``bf16-train``: training steps of mixnet_s (ours and timm's) in fp32 and under CPU bf16 autocast.
5. ``ort-int8``: our MixNet-S export in ONNX Runtime, fp32 against static int8 (per-channel QDQ, calibrated
   on random inputs: speed only) with every op quantized (as ``mixnet quantize`` does) and with only the
   convolutions quantized.

    .venv/bin/python benchmarks/probes/speed_probes.py --out docs/bench/speed_probes.md
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mixnet import create_model
from mixnet.deploy.optimize import onnx_rewrite
from mixnet.layers.squeeze_excite import SqueezeExcite
from mixnet.measure.machine import machine_info
from mixnet.measure.output import emit
from mixnet.measure.runners import openvino_runner, ort_runner, ort_session, sgd_step_runner
from mixnet.measure.threads import threads as using_threads
from mixnet.measure.timing import interleaved_medians


def _export(net: nn.Module, x: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), (x,), str(path), dynamo=False, input_names=["input"], dynamic_axes={"input": {0: "batch"}}
        )
    return path


def _ceil16(c: int) -> int:
    return (c + 15) // 16 * 16


class DwBlock(nn.Module):
    """1x1 expand -> swish -> depthwise MixConv in one of four forms -> swish -> 1x1 project."""

    def __init__(self, c_in: int, splits: list[int], kernels: list[int], mode: str) -> None:
        super().__init__()
        if mode == "padded split":
            splits = [_ceil16(c) for c in splits]
        self.splits = splits
        c = sum(splits)
        self.expand, self.project = nn.Conv2d(c_in, c, 1), nn.Conv2d(c, c_in, 1)
        if mode == "fused":
            k = max(kernels)
            self.dw = nn.ModuleList([nn.Conv2d(c, c, k, padding=k // 2, groups=c)])
        elif mode == "two convs":
            h = len(kernels) // 2
            self.splits = [sum(splits[:h]), sum(splits[h:])]
            ks = [kernels[h - 1], kernels[-1]]
            self.dw = nn.ModuleList(
                nn.Conv2d(s, s, k, padding=k // 2, groups=s) for s, k in zip(self.splits, ks, strict=True)
            )
        else:
            self.dw = nn.ModuleList(
                nn.Conv2d(s, s, k, padding=k // 2, groups=s) for s, k in zip(splits, kernels, strict=True)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.expand(x))
        if len(self.dw) == 1:
            y = self.dw[0](y)
        else:
            y = torch.cat([conv(t) for conv, t in zip(self.dw, torch.split(y, self.splits, 1), strict=True)], 1)
        return self.project(F.silu(y))


class PairBlock(nn.Module):
    """A residual expand/project pair of 1x1 convs with swish between (``groups`` as in MixNet)."""

    def __init__(self, c: int, e: int, groups: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(c, e, 1, groups=groups), nn.Conv2d(e, c, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.silu(self.a(x))) + x


def probe_depthwise(tmp: Path, threads: int, rounds: int) -> list[str]:
    cases = [
        (40, [80, 80, 80], [3, 5, 7], 28),
        (80, [120, 120, 120, 120], [3, 5, 7, 9], 14),
        (120, [90, 90, 90, 90], [3, 5, 7, 9], 14),
        (200, [300, 300, 300, 300], [3, 5, 7, 9], 7),
        (40, [48, 48, 48], [3, 5, 7], 56),
    ]
    modes = ["fused", "split", "padded split", "two convs"]
    lines = ["| batch | block input | MixConv | " + " | ".join(f"{m} (us)" for m in modes) + " |"]
    lines.append("|---|---|---|" + "---|" * len(modes))
    for batch in (1, 8):
        for c_in, splits, kernels, hw in cases:
            x = torch.randn(batch, c_in, hw, hw)
            runs = {}
            for m in modes:
                path = _export(DwBlock(c_in, splits, kernels, m), x, tmp / f"dw-{m.replace(' ', '-')}.onnx")
                runs[m] = openvino_runner(path, x, threads)
            med = interleaved_medians(runs, rounds=rounds, iters=10, settle=2)
            cells = [f"{med[m] * 1e6:.0f} ({med['fused'] / med[m]:.2f}x)" for m in modes]
            mix = f"{sum(splits)} ch, k {'/'.join(map(str, kernels))}"
            lines.append(f"| {batch} | {c_in} x {hw}x{hw} | {mix} | " + " | ".join(cells) + " |")
    return lines


def probe_padding(tmp: Path, threads: int, rounds: int) -> list[str]:
    cases = [
        ((40, 240, 28, 1), (48, 240, 28, 1)),
        ((120, 360, 14, 1), (128, 368, 14, 1)),
        ((200, 1200, 7, 1), (208, 1200, 7, 1)),
        ((24, 72, 56, 1), (32, 80, 56, 1)),
        ((40, 240, 28, 2), (64, 256, 28, 2)),
    ]
    lines = [
        "| batch | channels, expansion, size, groups | padded to | as is (us) | padded (us) |",
        "|---|---|---|---|---|",
    ]
    for batch in (1, 8):
        for base, pad in cases:
            runs = {}
            for tag, (c, e, hw, g) in (("as is", base), ("padded", pad)):
                x = torch.randn(batch, c, hw, hw)
                runs[tag] = openvino_runner(_export(PairBlock(c, e, g), x, tmp / f"pad-{tag}.onnx"), x, threads)
            med = interleaved_medians(runs, rounds=rounds, iters=20, settle=2)
            ratio = med["as is"] / med["padded"]
            times = f"{med['as is'] * 1e6:.0f} | {med['padded'] * 1e6:.0f} ({ratio:.2f}x)"
            lines.append(f"| {batch} | {base} | {pad[:2]} | {times} |")
    return lines


def _se_resize(self: SqueezeExcite, x: torch.Tensor) -> torch.Tensor:
    s = F.adaptive_avg_pool2d(x, 1)
    s = self.expand(self.act(self.reduce(s))).sigmoid()
    return x * F.interpolate(s, size=x.shape[-2:], mode="nearest")


def probe_ort_se(tmp: Path, threads: int, rounds: int) -> list[str]:
    import onnx

    torch.manual_seed(0)
    model = create_model("mixnet_s").eval()
    x1 = torch.randn(1, 3, 224, 224)
    plain = _export(onnx_rewrite(model, img_size=224), x1, tmp / "se-plain.onnx")
    original = SqueezeExcite.forward
    SqueezeExcite.forward = _se_resize
    try:
        resized = _export(onnx_rewrite(model, img_size=224), x1, tmp / "se-resize.onnx")
    finally:
        SqueezeExcite.forward = original
    variants = {
        "as exported": (plain, []),
        "swish unfused": (plain, ["QuickGeluFusion"]),
        "SE gate resized": (resized, []),
        "SE gate resized, swish unfused": (resized, ["QuickGeluFusion"]),
    }

    reorders = {}
    for name, (path, disabled) in variants.items():
        saved = tmp / "optimized.onnx"
        ort_session(path, threads, disabled_optimizers=disabled, optimized_model_path=saved)
        ops = collections.Counter(n.op_type for n in onnx.load(str(saved)).graph.node)
        reorders[name] = ops["ReorderInput"] + ops["ReorderOutput"]
    lines = ["| batch | variant | layout reorders | images/s |", "|---|---|---|---|"]
    for batch in (1, 8):
        feed = {"input": torch.randn(batch, 3, 224, 224).numpy()}
        runs = {}
        for name, (path, disabled) in variants.items():
            s = ort_session(path, threads, disabled_optimizers=disabled)
            runs[name] = lambda s=s, feed=feed: s.run(None, feed)
        med = interleaved_medians(runs, rounds=rounds, iters=3, settle=1)
        base = med["as exported"]
        for name in variants:
            lines.append(f"| {batch} | {name} | {reorders[name]} | {batch / med[name]:.1f} ({base / med[name]:.2f}x) |")
    return lines


def probe_bf16_train(rounds: int) -> list[str]:
    import timm

    cl = torch.channels_last
    batch, size = 128, 64
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=cl)
    y = torch.randint(0, 1000, (batch,))

    def step_fn(model: nn.Module, bf16: bool):
        return sgd_step_runner(model.train().to(memory_format=cl), x, y, amp_dtype=torch.bfloat16 if bf16 else None)

    steps = {
        "timm fp32": step_fn(timm.create_model("mixnet_s"), False),
        "timm bf16 autocast": step_fn(timm.create_model("mixnet_s"), True),
        "ours fp32": step_fn(create_model("mixnet_s"), False),
        "ours bf16 autocast": step_fn(create_model("mixnet_s"), True),
    }
    med = interleaved_medians(steps, rounds=rounds, iters=1, warmup=1)
    lines = [f"mixnet_s, batch {batch} x {size} px, channels_last, SGD; images/s:", "", "| contender | images/s |"]
    lines.append("|---|---|")
    lines += [f"| {k} | {batch / v:.1f} ({med['timm fp32'] / v:.2f}x timm fp32) |" for k, v in med.items()]
    return lines


def probe_ort_int8(tmp: Path, threads: int, rounds: int) -> list[str]:
    from mixnet.deploy.export import to_onnx
    from mixnet.deploy.quantize import quantize_onnx

    torch.manual_seed(0)
    fp32 = to_onnx(create_model("mixnet_s").eval(), tmp / "int8-fp32.onnx", img_size=224, threads=threads).path
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(8, 3, 224, 224, generator=g).numpy() for _ in range(4)]
    files = {"fp32": fp32, "int8, every op": quantize_onnx(fp32, tmp / "int8-all.onnx", calibration=calib)}
    conv_only = quantize_onnx(fp32, tmp / "int8-conv.onnx", calibration=calib, op_types=["Conv"])
    files["int8, convolutions only"] = conv_only
    lines = ["| batch | model | images/s |", "|---|---|---|"]
    for batch in (1, 8):
        x = torch.randn(batch, 3, 224, 224, generator=g)
        med = interleaved_medians(
            {k: ort_runner(p, x, threads) for k, p in files.items()}, rounds=rounds, iters=3, settle=1
        )
        lines += [f"| {batch} | {k} | {batch / v:.1f} ({med['fp32'] / v:.2f}x) |" for k, v in med.items()]
    return lines


def main() -> None:
    """Runs the probes and prints (or writes) one markdown report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    info = machine_info(args.threads)
    cmd = "`.venv/bin/python benchmarks/probes/speed_probes.py" + (f" --out {args.out}`" if args.out else "`")
    lines = [
        f"{info['cpu']}, {args.threads} threads; torch {info['torch']}, onnxruntime {info['onnxruntime']}, "
        f"openvino {info['openvino']}, timm {info['timm']}. Command: {cmd}. Medians of {args.rounds} "
        "interleaved rounds; ratios > 1 mean the variant is faster than the first column.",
    ]
    with using_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sections = (
            (
                "1. Depthwise MixConv forms in one block (OpenVINO, fp32)",
                lambda: probe_depthwise(tmp, args.threads, args.rounds),
            ),
            (
                "2. Channels padded to multiples of 16 (OpenVINO, fp32)",
                lambda: probe_padding(tmp, args.threads, args.rounds),
            ),
            (
                "3. Squeeze-excite and swish for ONNX Runtime's blocked layout (MixNet-S, 224 px)",
                lambda: probe_ort_se(tmp, args.threads, args.rounds),
            ),
            ("4. Training under CPU bf16 autocast", lambda: probe_bf16_train(max(3, args.rounds // 3))),
            (
                "5. int8 in ONNX Runtime: every op or only the convolutions (MixNet-S, 224 px)",
                lambda: probe_ort_int8(tmp, args.threads, args.rounds),
            ),
        )
        for title, run in sections:
            print(title, flush=True)
            body = run()
            print("\n".join(body), flush=True)
            lines += ["", f"## {title}", "", *body]
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()

"""Probe: does int8 pay in OpenVINO (NNCF post-training quantization), and is it right on this CPU?

Our fp32 ONNX export is converted by OpenVINO (``ov.convert_model``, which fuses swish into one op, so it
stays a post-op of its convolution) and quantized with NNCF's post-training quantization (the default
``performance`` preset: int8 weights per channel, activations per tensor), keeping the squeeze-excite
multiplications in float (``IgnoredScope(types=["Multiply"])``). Two things are measured, each in its own
process under two oneDNN ISA settings, because oneDNN reads the cap once, at load:

- ``all``: whatever the CPU has (on this one, AMX: ``brgconv_avx512_amx_*`` int8 kernels);
- ``vnni``: ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`` (AVX-512 VNNI int8 kernels, no AMX).

Accuracy: top-1 on the digits' 500 held-out images of a model trained on them (``--weights``, default the
main job's ``docs/demo/model.safetensors``: ``bash scripts/main.sh --out docs/demo`` makes it), fp32 vs
int8 calibrated on ``--calib-images`` train images; as a cross-check, ONNX Runtime's own int8 file (as
``mixnet quantize`` writes it) run in ONNX Runtime and in OpenVINO. Speed: ``mixnet_s`` (random weights)
at 224 px, batch 1 and 8, fp32 vs int8 in OpenVINO, interleaved medians. Needs ``pip install nncf``.

    .venv/bin/python benchmarks/probes/int8_openvino.py --out docs/bench/int8_openvino.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ISAS = {"all": None, "vnni": "AVX512_CORE_VNNI"}


def quantize(onnx_path: Path, out_xml: Path, calibration: list) -> Path:
    """NNCF int8 copy of an ONNX model as an OpenVINO IR (swish fused first, SE multiplies in float)."""
    import nncf
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    q = nncf.quantize(
        model,
        nncf.Dataset(calibration),
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(types=["Multiply"]),
    )
    ov.save_model(q, str(out_xml), compress_to_fp16=False)
    return out_xml


def worker(args: argparse.Namespace) -> dict:
    """The measurements of one process (one ISA setting); returns them as a dict."""
    import torch

    from mixnet import create_model
    from mixnet.data import build_datasets, transform_for
    from mixnet.deploy.export import to_onnx
    from mixnet.deploy.quantize import dataset_batches, file_top1, quantize_onnx
    from mixnet.io.load import load_model
    from mixnet.measure.runners import openvino_model, openvino_runner
    from mixnet.measure.timing import interleaved_medians

    out: dict = {"isa": args.isa}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, spec = load_model(args.weights)
        tf = transform_for(spec.preprocess)
        train, val, _ = build_datasets("digits", train_tf=tf, val_tf=tf)
        fp32 = to_onnx(model, tmp / "digits.onnx", img_size=spec.preprocess.img_size).path
        calib = dataset_batches(train, args.calib_images, batch_size=1)
        int8 = quantize(fp32, tmp / "digits.int8.xml", calib)
        # ONNX Runtime's own int8 file (as `mixnet quantize` writes it) in both runtimes: a cross-check that
        # tells a wrong OpenVINO kernel from a bad quantization.
        ort_int8 = quantize_onnx(fp32, tmp / "digits.ort-int8.onnx", calibration=calib)
        out["ort_int8_top1_in_ort"] = file_top1(ort_int8, val, threads=args.threads)
        for label, path in (("fp32", fp32), ("int8", int8), ("ort_int8", ort_int8)):
            compiled = openvino_model(path)
            correct = 0
            for i in range(len(val)):
                x, y = val[i]
                correct += int(compiled(x[None].numpy())[0].argmax() == y)
            out[f"{label}_top1"] = 100.0 * correct / len(val)
        torch.manual_seed(0)
        net = create_model("mixnet_s").eval()
        fp32 = to_onnx(net, tmp / "mixnet_s.onnx", img_size=224).path
        rng = torch.Generator().manual_seed(0)
        int8 = quantize(
            fp32, tmp / "mixnet_s.int8.xml", [torch.randn(1, 3, 224, 224, generator=rng).numpy() for _ in range(32)]
        )
        for batch in (1, 8):
            x = torch.randn(batch, 3, 224, 224, generator=rng)
            runs = {
                k: openvino_runner(p, x, args.threads) for k, p in (("fp32", fp32), ("int8", int8), ("fp32 A/A", fp32))
            }
            med = interleaved_medians(runs, rounds=args.rounds, iters=3, settle=1, pause_s=0.01)
            out[f"b{batch}"] = {k: batch / v for k, v in med.items()}
        probe = openvino_model(int8, args.threads, profiling=True)
        request = probe.create_infer_request()
        request.infer({0: torch.zeros(1, 3, 224, 224).numpy()})
        out["conv_kernels"] = sorted({p.exec_type for p in request.profiling_info if "conv" in p.exec_type})
    return out


def main() -> None:
    """Runs one worker process per ISA setting and prints (or writes) the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="docs/demo/model.safetensors")
    ap.add_argument("--calib-images", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--isa", default="all", choices=list(ISAS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    import importlib.util

    if importlib.util.find_spec("nncf") is None:
        sys.exit("this probe needs NNCF: pip install nncf")
    if not Path(args.weights).is_file():
        sys.exit(f"no model file {args.weights!r}: run `bash scripts/main.sh --out docs/demo` or pass --weights")
    from mixnet.measure.machine import machine_info
    from mixnet.measure.output import emit

    info = machine_info(args.threads)
    results = []
    for isa, cap in ISAS.items():
        env = dict(os.environ)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if cap:
            env["ONEDNN_MAX_CPU_ISA"] = cap
        cmd = [sys.executable, __file__, "--worker", "--isa", isa, "--weights", args.weights]
        cmd += ["--calib-images", str(args.calib_images), "--threads", str(args.threads), "--rounds", str(args.rounds)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    import nncf

    lines = [
        f"{info['cpu']}, {args.threads} threads; OpenVINO {info['openvino']}, NNCF {nncf.__version__}, "
        f"torch {info['torch']}. Command: `.venv/bin/python benchmarks/probes/int8_openvino.py"
        + (f" --out {args.out}`" if args.out else "`"),
        "",
        f"Accuracy: `{args.weights}` on the digits' 500 held-out images, int8 calibrated on "
        f"{args.calib_images} train images. Speed: mixnet_s, 224 px, images/s (medians of {args.rounds} "
        "interleaved rounds; the A/A row is fp32 measured twice).",
        "",
        "| oneDNN ISA | int8 conv kernels | top-1 fp32 | top-1 int8 | ORT's int8 file: in ORT, in OpenVINO "
        "| b1 fp32 | b1 int8 | b1 A/A | b8 fp32 | b8 int8 | b8 A/A |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        speed = []
        for b in ("b1", "b8"):
            s = r[b]
            speed += [f"{s['fp32']:.1f}", f"{s['int8']:.1f} ({s['int8'] / s['fp32']:.2f}x)", f"{s['fp32 A/A']:.1f}"]
        kernels = ", ".join(k for k in r["conv_kernels"] if "8" in k)
        lines.append(
            f"| {r['isa']} | {kernels} | {r['fp32_top1']:.1f} | {r['int8_top1']:.1f} | "
            f"{r['ort_int8_top1_in_ort']:.1f}, {r['ort_int8_top1']:.1f} | " + " | ".join(speed) + " |"
        )
    emit("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()

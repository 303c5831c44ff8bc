"""Where ONNX Runtime spends the time: per-op-type totals of our MixNet export against timm's peers.

ORT's own profiler (``SessionOptions.enable_profiling``) records every node's kernel time; this sums them
by op type (and, for convolutions, by kind: depthwise by kernel size, 1x1, other) over ``--runs`` calls
after a warmup, per network, and prints one markdown table with each network's share of its own time, plus
its total per image. Layout reorders that ORT inserts (``ReorderInput``/``ReorderOutput`` for its blocked
NCHWc convolutions) show up as their own rows.

    .venv/bin/python benchmarks/ort_profile.py --batch-size 1 --threads 2 --out docs/bench/ort_profile.md
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
import timm
import torch

from mixnet import create_model
from mixnet.deploy.export import to_onnx
from mixnet.io.convert import from_timm


def conv_kinds(path: Path) -> dict[str, str]:
    """Node name -> ``depthwise kK`` / ``1x1`` / ``conv kK`` for every Conv of the ONNX graph (shapes from
    the initializers, after ORT's graph optimizations are not applied: node names survive fusion)."""
    model = onnx.load(str(path))
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    kinds = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
            continue
        out_c, in_per_group, kh, _ = weights[node.input[1]]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1 and in_per_group == 1:
            kinds[node.name] = f"depthwise k{kh}"
        elif kh == 1:
            kinds[node.name] = "1x1"
        else:
            kinds[node.name] = f"conv k{kh}"
    return kinds


def profile(
    path: Path, batch: int, img_size: int, threads: int, runs: int, warmup: int = 5
) -> tuple[dict[str, float], float]:
    """Microseconds per call by op type (convolutions by kind), and the total per call."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        so.profile_file_prefix = str(Path(tmp) / "prof")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: torch.randn(batch, 3, img_size, img_size).numpy()}
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    # The first calls allocate ORT's memory arena: only events after the warmup calls count.
    run_ends = sorted(e["ts"] + e["dur"] for e in events if e.get("name") == "model_run")
    start = run_ends[warmup - 1]
    events = [e for e in events if e.get("ts", 0) > start]
    kinds = conv_kinds(path)
    totals: dict[str, float] = collections.defaultdict(float)
    whole = 0.0
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            whole += e["dur"]
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        op = e["args"].get("op_name", "?")
        node = e["name"][: -len("_kernel_time")]
        key = kinds.get(node, op) if op in ("Conv", "FusedConv") else op
        if op == "FusedConv" and node not in kinds:
            key = "FusedConv (other)"
        totals[key] += e["dur"]
    return {k: v / runs for k, v in totals.items()}, whole / runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", nargs="+", default=["mobilenetv3_large_100", "efficientnet_b0"])
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--out", default=None, help="also write the markdown table here")
    args = p.parse_args()
    torch.manual_seed(0)
    nets = {}
    ref = timm.create_model("mixnet_s").eval()
    ours = create_model("mixnet_s").eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    nets["ours mixnet_s"] = (ours, True)
    nets["timm mixnet_s"] = (ref, False)
    for name in args.peers:
        nets[f"timm {name}"] = (timm.create_model(name).eval(), False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (net, optimize) in nets.items():
            path = Path(tmp) / (label.replace(" ", "_") + ".onnx")
            to_onnx(net, path, img_size=args.img_size, optimize=optimize, threads=args.threads)
            results[label] = profile(path, args.batch_size, args.img_size, args.threads, args.runs)
            print(f"{label}: {results[label][1] / 1e3:.2f} ms per call", flush=True)
    keys = sorted(
        {k for totals, _ in results.values() for k in totals}, key=lambda k: -results["ours mixnet_s"][0].get(k, 0)
    )
    lines = [
        f"ORT {ort.__version__}, batch {args.batch_size}, {args.img_size} px, {args.threads} threads, "
        f"{args.runs} profiled calls; microseconds per call by op type (share of the network's kernel time)",
        "",
        "| op | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for key in keys:
        cells = []
        for totals, _ in results.values():
            v = totals.get(key, 0.0)
            cells.append(f"{v:.0f} ({100 * v / sum(totals.values()):.0f}%)" if v else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| **model_run (ms)** | " + " | ".join(f"**{w / 1e3:.2f}**" for _, w in results.values()) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

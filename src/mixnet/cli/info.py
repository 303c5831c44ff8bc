"""``mixnet info``: every registered model with params, MACs and published accuracy, and kernel variants.

``--kernels`` lists the paper's kernel-study variants instead: each chosen model with every depthwise
conv set to each kernel spec (``mixnet info --model mobilenet_v1 mobilenet_v2 --kernels k3 k7 k3.5.7``).
"""

from __future__ import annotations

import argparse
import json

from mixnet.models.complexity import complexity
from mixnet.models.configs import KernelSpec
from mixnet.models.registry import get_entry, list_models


def model_table(img_size: int = 224, models: list[str] | None = None) -> list[dict]:
    """One row per registered model: params, MACs (full and conv+linear), paper and timm top-1."""
    rows = []
    for name in models or list_models():
        entry, c = get_entry(name), complexity(name, img_size)
        rows.append(
            {
                "model": name,
                "params": c.params,
                "macs_m": round(c.macs / 1e6, 1),
                "conv_linear_macs_m": round(c.conv_linear_macs / 1e6, 1),
                "paper_macs_m": entry.paper_macs,
                "paper_top1": entry.paper_top1,
                "timm_top1": entry.timm_top1,
                "weights": entry.hf_hub_id,
            }
        )
    return rows


def variant_table(
    models: list[str], kernels: list[str], img_size: int = 224, width_mult: float | None = None
) -> list[dict]:
    """One row per (model, kernel spec): params and MACs, as the kernel study varies them."""
    overrides = {} if width_mult is None else {"width_mult": width_mult}
    rows = []
    for name in models:
        for spec in kernels:
            c = complexity(name, img_size, kernels=spec, **overrides)
            rows.append(
                {
                    "model": name,
                    "kernels": str(KernelSpec.parse(spec)),
                    "width_mult": width_mult or get_entry(name).config.width_mult,
                    "params": c.params,
                    "macs_m": round(c.macs / 1e6, 1),
                    "conv_linear_macs_m": round(c.conv_linear_macs / 1e6, 1),
                }
            )
    return rows


def format_variants(rows: list[dict]) -> str:
    """The variant table as markdown."""
    lines = ["| model | kernels | width | params | MACs (M) | conv+linear MACs (M) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['kernels']} | {r['width_mult']} | {r['params']:,} | {r['macs_m']} | "
            f"{r['conv_linear_macs_m']} |"
        )
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    """The table as markdown."""
    cols = [
        "model",
        "params",
        "MACs (M)",
        "conv+linear MACs (M)",
        "paper MACs (M)",
        "paper top-1",
        "timm top-1",
        "weights",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['macs_m']} | {r['conv_linear_macs_m']} | "
            f"{r['paper_macs_m'] or '-'} | {r['paper_top1'] or '-'} | {r['timm_top1'] or '-'} | {r['weights'] or '-'} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Prints the table."""
    if args.kernels:
        models = args.model or ["mobilenet_v1", "mobilenet_v2"]
        rows = variant_table(models, args.kernels, args.img_size, args.width_mult)
        print(json.dumps(rows, indent=2) if args.json else format_variants(rows))
        return 0
    if args.width_mult is not None:
        raise ValueError("--width-mult applies to the kernel variants (--kernels)")
    rows = model_table(args.img_size, args.model)
    print(json.dumps(rows, indent=2) if args.json else format_markdown(rows))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet info``."""
    p = sub.add_parser(
        "info",
        help="table of registered models: params, MACs, paper and timm top-1",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--img-size", type=int, default=224, help="input resolution for the MAC count")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    p.add_argument(
        "--model", nargs="+", metavar="NAME", help="only these models (default: all; with --kernels: the MobileNets)"
    )
    p.add_argument(
        "--kernels",
        nargs="+",
        metavar="SPEC",
        help="list kernel-study variants: every depthwise conv set to each spec (k7, k3.5.7, k3.5.7-exp, k9-dil)",
    )
    p.add_argument("--width-mult", type=float, help="width multiplier of the kernel variants (default: the model's)")
    p.set_defaults(func=run)

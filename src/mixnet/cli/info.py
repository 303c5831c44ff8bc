"""``mixnet info``: every registered model with params, MACs and published accuracy."""

from __future__ import annotations

import argparse
import json

from mixnet.models.complexity import complexity
from mixnet.models.registry import get_entry, list_models


def model_table(img_size: int = 224) -> list[dict]:
    """One row per registered model: params, MACs (full and conv+linear), paper and timm top-1."""
    rows = []
    for name in list_models():
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
    rows = model_table(args.img_size)
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
    p.set_defaults(func=run)

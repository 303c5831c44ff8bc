"""``mixnet demo``: the README's main job (train on the built-in digits, evaluate, predict, report)."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Runs :func:`mixnet.train.demo.run_demo` and prints where the report is."""
    from mixnet.train.demo import run_demo

    out = run_demo(args.out, epochs=args.epochs, data=args.data, workers=args.workers, progress=not args.no_progress)
    print(f"report: {out / 'report.md'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet demo``."""
    from mixnet.train.demo import DEMO_EPOCHS

    p = sub.add_parser(
        "demo",
        help="train a MixNet-S on the built-in digits, evaluate, predict and write a report (minutes on a CPU)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", default=None, help="run folder; none: runs/demo-<time>")
    p.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs")
    p.add_argument("--data", default=None, help="an ImageFolder root (train/, val/); none: the built-in digits")
    p.add_argument("--workers", type=int, default=1, help="data loader worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)

"""``mixnet demo``: the README's main job (train on the built-in digits, evaluate, predict, report)."""

from __future__ import annotations

import argparse

from mixnet.cli import options


def run(args: argparse.Namespace) -> int:
    """Runs :func:`mixnet.train.demo.run_demo` and prints where the report is."""
    from mixnet.train.demo import run_demo

    out = run_demo(
        args.out,
        epochs=args.epochs,
        data=args.data,
        workers=args.workers,
        threads=args.threads,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(f"report: {out / 'report.md'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet demo``."""
    from mixnet.train.demo import DEMO_EPOCHS

    p = sub.add_parser(
        "demo",
        help="train a MixNet-S on the built-in digits, evaluate, predict and write a report (minutes on a CPU)",
    )
    options.add_out(p, None, "run folder; none: runs/demo-<time>")
    p.add_argument("--epochs", type=options.positive_int, default=DEMO_EPOCHS, help="training epochs")
    options.add_data(p, "an ImageFolder root (train/, val/); none: the built-in digits")
    p.add_argument(
        "--batch-size",
        type=options.positive_int,
        default=None,
        help="images per training step (default: the short preset's 64; smaller on a smaller data set)",
    )
    options.add_workers(p, 1)
    options.add_threads(p, 1)
    options.add_progress(p, lines="epoch")
    p.set_defaults(func=run)

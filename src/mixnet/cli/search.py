"""``mixnet search`` and ``mixnet latency-table``: the architecture search with this machine's latency in the loop.

``mixnet latency-table`` measures every block choice of the search space at every position and checks the
predictor against whole nets measured end to end; ``mixnet search`` trains a weight-sharing supernet,
runs evolution and a random-search baseline with the same budget under a latency target, retrains the
winners beside the skeleton scaled to the same latency, and writes the report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mixnet.cli import options
from mixnet.search.latency import RUNTIMES


def _table(args: argparse.Namespace) -> int:
    from mixnet.search.latency import measure_table, plot_predictor, predictor_error
    from mixnet.search.space import SearchSpace

    space = SearchSpace(args.skeleton, elastic_depth=args.elastic_depth)
    space.check_skeleton()
    out = Path(args.out)
    table = measure_table(
        space,
        runtime=args.runtime,
        img_size=args.img_size,
        batch=args.batch_size,
        threads=args.threads,
        num_classes=args.num_classes,
        progress=args.progress is not False,
    )
    table.save(out)
    u = table.unit
    print(
        f"{table.runtime} latency table: {out} ({len(table.entries)} positions x {len(table.entries[0])} choices, "
        f"fixed {table.fixed:.3f} {u}; nets from {table.fastest():.3f} to {table.slowest():.3f} {u})"
    )
    if args.check and not table.measured:
        print("the MACs proxy is an exact count: no predictor check needed")
    elif args.check:
        result = predictor_error(table, space, n=args.check, seed=args.seed)
        check = out.with_name(out.stem + "_check.json")
        check.write_text(json.dumps(result, indent=2) + "\n")
        plot = plot_predictor(result, out.with_name(out.stem + "_check.png"))
        print(
            f"predictor on {args.check} random nets: mean abs error {100 * result['mean_abs_error']:.1f}%, "
            f"max {100 * result['max_abs_error']:.1f}%, bias {100 * result['mean_bias']:+.1f}% ({check}, {plot})"
        )
    return 0


def _search(args: argparse.Namespace) -> int:
    from mixnet.search.run import SearchConfig, run_search

    fields = {
        k: getattr(args, k)
        for k in (
            "data",
            "img_size",
            "skeleton",
            "elastic_depth",
            "threads",
            "table",
            "allow_table_mismatch",
            "runtime",
            "target",
            "target_fraction",
            "epochs",
            "batch_size",
            "population",
            "generations",
            "retrain_epochs",
            "seed",
            "device",
            "workers",
        )
        if getattr(args, k) is not None
    }
    if args.seeds:
        fields["seeds"] = tuple(args.seeds)
    if args.soft:
        fields["hard"] = False
    if args.train_threads is not None:
        fields["train_threads"] = args.train_threads
    result = run_search(SearchConfig(**fields), args.out)
    if result is not None:
        print(f"found: {result.files['found']} (target {result.target:.3f} {result.unit})")
        if (Path(args.out) / "report.md").exists():
            print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet search`` and ``mixnet latency-table``."""
    t = sub.add_parser(
        "latency-table",
        help="measure every block choice of the search space on this machine (and check the predictor)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--skeleton", default="mixnet_s", help="registered model whose strides and widths are kept")
    t.add_argument(
        "--elastic-depth", action="store_true", help="a table for the space whose stage depths are searched too"
    )
    t.add_argument("--img-size", type=options.positive_int, default=224, help="input resolution")
    t.add_argument("--batch-size", type=options.positive_int, default=1, help="images per forward pass")
    t.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="eager",
        help="what is timed: PyTorch eager, the optimized rewrite, ONNX Runtime, or macs (counted, no device)",
    )
    t.add_argument("--threads", type=options.positive_int, default=1, help="intra-op threads (torch or ORT)")
    t.add_argument("--num-classes", type=options.positive_int, default=1000, help="classifier outputs of the head")
    t.add_argument(
        "--check", type=int, default=20, help="random nets measured end to end to check the predictor (0: none)"
    )
    t.add_argument("--seed", type=int, default=0, help="seed of the random nets")
    t.add_argument("--out", default="latency_table.json", help="the table file (the check goes beside it)")
    options.add_progress(t)
    t.set_defaults(func=_table)

    s = sub.add_parser(
        "search",
        help="architecture search with this machine's latency in the loop (supernet, evolution vs random)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument(
        "--data", default=None, help="ImageFolder root, digits or cluttered-digits (default: cluttered-digits)"
    )
    s.add_argument("--img-size", type=options.positive_int, default=None, help="resolution (default 40)")
    s.add_argument("--skeleton", default=None, help="registered model whose strides and widths are kept (mixnet_s)")
    s.add_argument(
        "--elastic-depth",
        action="store_true",
        help="search stage depths too: any block but a stage's first may be left out",
    )
    s.add_argument(
        "--target",
        type=float,
        default=None,
        help="latency target in the table's unit: ms, or MMAC for --runtime macs (default: a fraction of the "
        "skeleton's)",
    )
    s.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="latency runtime: of the table measured here, or the one --table was measured on (eager)",
    )
    s.add_argument(
        "--target-fraction",
        type=float,
        default=None,
        help="target as a fraction of the skeleton's latency as the table predicts it (0.5)",
    )
    s.add_argument(
        "--soft", action="store_true", help="MnasNet's soft reward ACC x (LAT/T)^-0.07 instead of a hard limit"
    )
    s.add_argument("--table", default=None, help="a latency table from `mixnet latency-table` (default: measured here)")
    s.add_argument(
        "--allow-table-mismatch", action="store_true", help="use a table from other settings (with a warning)"
    )
    s.add_argument("--threads", type=options.positive_int, default=None, help="threads of the latency measurements (1)")
    s.add_argument("--epochs", type=options.positive_int, default=None, help="supernet training epochs (15)")
    s.add_argument("--batch-size", type=options.positive_int, default=None, help="supernet batch size (64)")
    s.add_argument("--population", type=options.positive_int, default=None, help="evolution population (16)")
    s.add_argument("--generations", type=options.positive_int, default=None, help="evolution generations (6)")
    s.add_argument("--retrain-epochs", type=int, default=None, help="epochs of the final retraining (14; 0: skip)")
    s.add_argument("--seeds", type=int, nargs="+", default=None, help="retraining seeds (0 1)")
    s.add_argument("--seed", type=int, default=None, help="search seed (0)")
    s.add_argument("--device", default=None, help="auto, cpu, cuda")
    s.add_argument("--workers", type=int, default=None, help="data loader workers")
    s.add_argument("--train-threads", type=int, default=None, help="torch threads while training (0: default)")
    s.add_argument("--out", default="search", help="search folder (resumes when it holds this search)")
    s.set_defaults(func=_search)

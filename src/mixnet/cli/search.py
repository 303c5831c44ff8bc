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
from mixnet.search.netcost import RUNTIMES


def _table(args: argparse.Namespace) -> int:
    from mixnet.search.latency import measure_table
    from mixnet.search.predictor import plot_predictor, predictor_error
    from mixnet.search.space import SearchSpace

    space = SearchSpace(args.skeleton, elastic_depth=args.elastic_depth)
    space.check_skeleton()
    out = Path(args.out)
    table = measure_table(
        space,
        runtime=args.runtime,
        img_size=args.img_size,
        batch=args.latency_batch_size,
        threads=args.latency_threads,
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
        result = predictor_error(table, space, n=args.check, seed=args.seed, target=args.check_target)
        check = out.with_name(out.stem + "_check.json")
        check.write_text(json.dumps(result, indent=2) + "\n")
        plot = plot_predictor(result, out.with_name(out.stem + "_check.png"))
        print(
            f"predictor on {result['n']} nets timed in a fresh process: mean abs error "
            f"{100 * result['mean_abs_error']:.1f}%, max {100 * result['max_abs_error']:.1f}%, bias "
            f"{100 * result['mean_bias']:+.1f}% ({check}, {plot})"
        )
        for region, r in result["by_region"].items():
            print(
                f"  {region}: {r['n']} nets, mean abs error {100 * r['mean_abs_error']:.1f}%, "
                f"bias {100 * r['mean_bias']:+.1f}%"
            )
    return 0


def _search(args: argparse.Namespace) -> int:
    from mixnet.search.config import SearchConfig
    from mixnet.search.run import run_search

    if args.report:
        if len(args.report) != 2 or args.report[0] != "report":
            raise ValueError(
                f"unexpected argument(s) {' '.join(args.report)}: `mixnet search` takes options, "
                "or `report FOLDER` to rewrite a finished search's report"
            )
        return _report(Path(args.report[1]), retime=args.retime)
    if args.retime:
        raise ValueError("--retime goes with `mixnet search report FOLDER`: it times a finished search's nets again")
    result = run_search(SearchConfig(**options.explicit_options(args, SearchConfig)), args.out)
    if result is not None:
        print(f"found: {result.files['found']} (target {result.target:.3f} {result.unit})")
        if (Path(args.out) / "report.md").exists():
            print(f"report: {Path(args.out) / 'report.md'}")
    return 0


def _report(folder: Path, *, retime: bool = False) -> int:
    from mixnet.search.report import write_search_report
    from mixnet.search.retrain import retime as time_again

    if not (folder / "search.json").is_file():
        raise FileNotFoundError(f"{folder} is not a search folder (it has no search.json)")
    if retime:
        time_again(folder)
    print(f"report: {write_search_report(folder)}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet search`` (with ``mixnet search report``) and ``mixnet latency-table``."""
    from mixnet.search.config import SearchConfig
    from mixnet.train.config import field_help

    described = {name: text for name, (_, text, _) in field_help(SearchConfig).items()}
    t = sub.add_parser(
        "latency-table",
        help="measure every block choice of the search space on this machine (and check the predictor)",
    )
    t.add_argument("--skeleton", default="mixnet_s", help=described["skeleton"])
    t.add_argument(
        "--elastic-depth",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a table for the space whose stage depths are searched",
    )
    t.add_argument("--img-size", type=options.positive_int, default=224, help="input resolution")
    t.add_argument("--latency-batch-size", type=options.positive_int, default=1, help=described["latency_batch_size"])
    t.add_argument("--runtime", choices=RUNTIMES, default="eager", help=described["runtime"].split(";")[0])
    t.add_argument("--latency-threads", type=options.positive_int, default=1, help=described["latency_threads"])
    t.add_argument("--num-classes", type=options.positive_int, default=1000, help="classifier outputs of the head")
    t.add_argument(
        "--check",
        type=int,
        default=20,
        help="random nets measured end to end in a fresh process to check the predictor, beside the "
        "cheapest and dearest net and half as many of the target region (0: none)",
    )
    t.add_argument(
        "--check-target",
        type=float,
        default=None,
        help="latency target (ms) whose region the check covers with nets repaired to meet it; none: cheap nets",
    )
    t.add_argument("--seed", type=int, default=0, help="seed of the random nets")
    t.add_argument("--out", default="latency_table.json", help="the table file (the check goes beside it)")
    options.add_progress(t)
    t.set_defaults(func=_table)

    s = sub.add_parser(
        "search",
        help="architecture search with this machine's latency in the loop (supernet, evolution vs random)",
        usage="mixnet search [options]\n       mixnet search report FOLDER [--retime]",
        description="Search an architecture under a latency target; the folder resumes. `mixnet search report "
        "FOLDER` rewrites report.md and pareto.png of a finished search from its files.",
    )
    options.add_config_options(s, SearchConfig)
    s.add_argument("--out", default="search", help="search folder (resumes when it holds this search)")
    s.add_argument("report", nargs="*", metavar="report FOLDER", help=argparse.SUPPRESS)
    s.add_argument(
        "--retime",
        action="store_true",
        help="with `report FOLDER`: time the compared nets again, in a fresh process, before writing the report",
    )
    s.set_defaults(func=_search)

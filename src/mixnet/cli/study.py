"""``mixnet study``: the paper's kernel study (single kernels vs MixConv on the MobileNets) as one command.

``mixnet study list`` names the built-in studies, ``mixnet study show STUDY`` prints one with the cost of
its variants, ``mixnet study run STUDY`` trains every variant and seed (resumable; shardable over
processes, GPUs or nodes; each run optionally under torchrun) and writes the report, and
``mixnet study report FOLDER`` rewrites the tables, plots and report from the results there.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from mixnet.cli import options
from mixnet.runtime import AMP_MODES

_IMAGES_HELP = "training images per epoch for the cost estimate (default: counted; ImageNet-1k has 1,281,167)"


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"need 0 <= K < N, got {text!r}")
    return k, n


def _count_images(data: str) -> int | None:
    """Training images per epoch, roughly (all built-in digits; the files under an ImageFolder's train/)."""
    if data in ("digits", "cluttered-digits"):
        return 5000
    if data == "cued-digits":
        from mixnet.data.cued import TRAIN_SIZE

        return TRAIN_SIZE
    train = Path(data) / "train"
    if not train.is_dir():
        return None
    return sum(len(os.listdir(d)) for d in train.iterdir() if d.is_dir())


def _describe(study, images: int | None = None) -> None:
    from mixnet.cli.info import format_variants
    from mixnet.study.runner import class_count, variant_costs

    runs = study.runs()
    classes = class_count(study)
    rows = variant_costs(study, classes or 1000)
    print(
        f"{study.name}: {len(study.models)} model(s) x {len(study.variants)} variant(s) x {len(study.seeds)} "
        f"seed(s) = {len(runs)} runs on {study.data or 'the --data folder'} at {study.img_size} px\n"
    )
    print(format_variants(rows))
    print(f"(params and MACs with a {classes or 1000}-class head{'' if classes else ', as ImageNet'})")
    config = study.train_config(study.architectures()[0], "unused")
    images = images or _count_images(study.data)
    if images:
        # Training costs about three forward passes per image (the forward and backward's two products).
        macs = sum(r["macs_m"] for r in rows) * 1e6 * len(study.seeds)
        total = 3 * macs * images * config.epochs
        print(
            f"\ntraining: {config.epochs} epoch{'s' * (config.epochs != 1)} of about {images:,} images per run; "
            f"about {_macs(total)} of forward+backward for the whole study (3 x forward MACs x images x epochs)"
        )
        seen = images * config.epochs * len(runs)
        count = f"{seen / 1e9:,.2f} billion" if seen >= 1e9 else f"{seen / 1e6:,.2f} million"
        print(f"{count} training images in all: GPU hours = that / (images/s of one GPU) / 3600")


def _macs(total: float) -> str:
    """A MAC count with the largest prefix that keeps it at 1 or more (``13.2 TMAC``, ``9,483 PMAC``)."""
    prefix, scale = next(
        (p, s) for p, s in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)) if total >= s or p == "M"
    )
    value = total / scale
    return f"{value:,.{2 if value < 10 else 1 if value < 100 else 0}f} {prefix}MAC"


def _load(args: argparse.Namespace, check_data: bool = True):
    from mixnet.study import load_study

    overrides: dict = {}
    if getattr(args, "data", None):
        overrides["data"] = args.data
    if getattr(args, "seeds", None):
        overrides["seeds"] = list(args.seeds)
    if getattr(args, "epochs", None):
        overrides["train"] = {"epochs": args.epochs}
    return load_study(args.study, overrides, check_data=check_data)


def _show(args: argparse.Namespace) -> int:
    from mixnet.study import builtin_studies, builtin_text

    study = _load(args, check_data=False)
    if args.study in builtin_studies() and not Path(args.study).is_file():
        print(builtin_text(args.study).rstrip() + "\n")
    _describe(study, args.images)
    return 0


def _list(args: argparse.Namespace) -> int:
    from mixnet.study import builtin_studies, load_study

    for name in builtin_studies():
        s = load_study(name, check_data=False)  # the ImageNet studies name no data until --data
        print(f"{name:12s} {len(s.runs()):4d} runs  {s.description}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from mixnet.study import run_study, write_report

    study = _load(args)
    if args.dry_run:
        _describe(study, args.images)
        return 0
    out = Path(args.out or Path("studies") / study.name)
    train_options = {
        k: getattr(args, k) for k in ("device", "workers", "threads", "amp", "progress") if getattr(args, k) is not None
    }
    plan = run_study(
        study,
        out,
        shard=args.shard,
        jobs=args.jobs,
        retry_failed=args.retry_failed,
        nproc_per_node=args.nproc_per_node,
        **train_options,
    )
    if plan.other_shards:
        print(f"{plan.other_shards} run(s) belong to other shards; `mixnet study report {out}` once they are done")
    command = "mixnet " + shlex.join(args.argv)
    files = write_report(out, command=command, measure_latency=not plan.other_shards, progress=bool(args.progress))
    print(f"report: {files['report.md']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mixnet.study import write_report

    files = write_report(args.folder, measure_latency=args.latency, progress=bool(args.progress))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet study`` and its subcommands."""
    p = sub.add_parser(
        "study",
        help="the paper's kernel study: train MobileNets with each kernel variant and seed, report trends",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(dest="study_command", required=True, metavar="SUBCOMMAND")
    ls = s.add_parser("list", help="the built-in studies")
    ls.set_defaults(func=_list)
    show = s.add_parser("show", help="print a study (built-in: its file) with the params and MACs of its variants")
    show.add_argument("study", help="built-in study name or a .toml/.yaml study file")
    show.add_argument("--images", type=options.positive_int, help=_IMAGES_HELP)
    show.set_defaults(func=_show)
    run = s.add_parser("run", help="train every variant and seed not finished yet, then write the report")
    run.add_argument("study", help="built-in study name or a .toml/.yaml study file")
    options.add_out(run, None, "study folder (results, runs, report); default: studies/<name>")
    options.add_data(run, "ImageFolder root (train/ and val/) replacing the study's data, e.g. ImageNet")
    run.add_argument("--seeds", type=int, nargs="+", help="replace the study's seeds")
    run.add_argument("--epochs", type=options.positive_int, help="replace the study's training epochs")
    run.add_argument("--shard", type=_shard, default=(0, 1), metavar="K/N", help="take runs K, K+N, K+2N, ...")
    run.add_argument(
        "--nproc-per-node", type=options.positive_int, default=1, help="train each run under torchrun with N processes"
    )
    run.add_argument(
        "--jobs",
        type=options.positive_int,
        default=1,
        help="train N runs at once in worker processes (e.g. one per CPU core or GPU), the dearest first",
    )
    run.add_argument("--retry-failed", action="store_true", help="train runs recorded as failed again")
    run.add_argument("--dry-run", action="store_true", help="print the variants and their cost; train nothing")
    run.add_argument("--images", type=options.positive_int, help=_IMAGES_HELP)
    run.add_argument("--device", default=None, help="training device: auto, cpu, cuda, cuda:1 (default: auto)")
    run.add_argument("--workers", type=int, default=None, help="data loader workers per run (default: the study's)")
    run.add_argument("--threads", type=int, default=None, help="CPU threads per run (default: the study's)")
    run.add_argument(
        "--amp", default=None, choices=AMP_MODES, help="mixed precision: auto, none, bf16, fp16 (default: the study's)"
    )
    options.add_progress(run, lines="epoch")
    run.set_defaults(func=_run)
    report = s.add_parser("report", help="rewrite the tables, plots and report of a study folder")
    report.add_argument("folder", help="the study folder")
    report.add_argument(
        "--latency", action=argparse.BooleanOptionalAction, default=True, help="measure latency if not yet measured"
    )
    options.add_progress(report)
    report.set_defaults(func=_report)

"""Running a study: every (model, kernel spec, seed) trained with the project's training code, resumable.

Runs go seed-major (all variants once before any second seed). A run's row is appended to the results
file when it ends; a run that raises is recorded as failed with its error and the study goes on. A study
started again in the same folder skips the finished runs and resumes an interrupted one from its last
checkpoint. With ``jobs > 1`` that many runs train at once in worker processes, still seed by seed, the
dearest variant of a seed first (see :mod:`mixnet.experiment.pool`). With ``nproc_per_node > 1`` each run
trains under torchrun (DDP); ``shard=(k, n)`` takes every n-th run, so n processes (nodes) can share one
study folder.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mixnet.atomic import write_text
from mixnet.data.datasets import BUILTIN_SETS
from mixnet.experiment import runs as experiment_runs
from mixnet.experiment.folder import claim_folder
from mixnet.experiment.pool import gpu_groups, run_parallel
from mixnet.experiment.rows import append_row
from mixnet.models.complexity import config_complexity
from mixnet.study.results import read_rows, results_name
from mixnet.study.spec import Study, StudyError, Variant, arch_name
from mixnet.train.checkpoint import CHECKPOINT_NAME

STUDY_FILE = "study.json"
# How the runs draw their data; a folder whose runs drew it otherwise (augmentation from the global generator,
# not paired across variants) is refused rather than mixed with new runs.
PAIRING = "split, order and augmentation seeded per run seed, shared by every variant"


@dataclass
class RunPlan:
    """What one invocation will do.

    Attributes:
        todo: runs to train (with those to resume).
        resume: run ids that continue from a checkpoint.
        done: run ids already finished.
        failed: run ids that failed before and are not retried.
        other_shards: runs left to other shards.
    """

    todo: list[Variant]
    resume: list[str]
    done: list[str]
    failed: list[str]
    other_shards: int


def rows_failed(out: Path) -> set[str]:
    """Run ids whose latest row is a failure."""
    return {run for run, row in read_rows(out).items() if row.get("status") == "failed"}


def check_shard(shard: tuple[int, int]) -> None:
    """Raises ValueError unless ``shard`` is (k, n) with 0 <= k < n."""
    k, n = shard
    if not (isinstance(k, int) and isinstance(n, int) and 0 <= k < n):
        raise ValueError(f"shard must be K/N with 0 <= K < N, got {k}/{n}")


def prepare_folder(study: Study, out: Path) -> None:
    """Creates ``out`` and records the study in it; a folder holding another study is refused (not overwritten).

    Raises:
        mixnet.experiment.folder.ForeignFolderError: ``out`` holds another study.
    """
    claim_folder(
        out,
        STUDY_FILE,
        study_record(study),
        kind="study",
        identity=lambda r: {**r["study"], "pairing": r.get("pairing")},
        defaults={"contrasts": []},  # a study without contrasts is the same study as before they existed
    )
    for model in study.models:  # the folder keeps the architecture files it trained: reports read it alone
        path = study.arch_file(arch_name(model))
        if path is not None and not (out / model).exists():
            write_text(out / model, path.read_text())


def study_record(study: Study) -> dict:
    """What identifies a study's results: every field but its source file."""
    d = asdict(study)
    d.pop("source")
    d["latency"] = asdict(study.latency)
    return {"study": json.loads(json.dumps(d)), "source": study.source, "pairing": PAIRING}


def plan_runs(study: Study, out: Path, shard: tuple[int, int] = (0, 1), retry_failed: bool = False) -> RunPlan:
    """Which runs this invocation trains, resumes or skips."""
    check_shard(shard)
    rows = read_rows(out)
    runs = study.runs()
    mine = [v for i, v in enumerate(runs) if i % shard[1] == shard[0]]
    done = [v.run_id for v in mine if rows.get(v.run_id, {}).get("status") == "ok"]
    failed = [v.run_id for v in mine if rows.get(v.run_id, {}).get("status") == "failed"]
    skip = set(done) | (set() if retry_failed else set(failed))
    todo = [v for v in mine if v.run_id not in skip]
    resume = [v.run_id for v in todo if experiment_runs.can_resume(out / "runs" / v.run_id)]
    others = [v for i, v in enumerate(runs) if i % shard[1] != shard[0] and v.run_id not in rows]
    return RunPlan(todo, resume, done, [] if retry_failed else failed, len(others))


def class_count(study: Study) -> int | None:
    """Classes of the study's data without loading it: 10 for the built-in digits, the class folders of an
    ImageFolder's train/ (None when the data is not here)."""
    if study.data in BUILTIN_SETS:
        return 10
    train = Path(study.data) / "train"
    return sum(p.is_dir() for p in train.iterdir()) if study.data and train.is_dir() else None


def variant_costs(study: Study, num_classes: int) -> list[dict]:
    """Params and MACs of every architecture of the study, with the study's overrides and class count (the
    same numbers as its results rows)."""
    rows = []
    for v in study.architectures():
        fields = complexity_fields(study, v, num_classes)
        width = study.model_config(v).width_mult
        rows.append({"model": v.family, "kernels": v.kernels, "width_mult": width, **fields})
    return rows


def complexity_fields(study: Study, variant: Variant, num_classes: int) -> dict:
    """Params and MACs of a run's model, at the study's setting and at ImageNet's (224 px, 1000 classes)."""
    config = study.model_config(variant)
    here = config_complexity(config, study.img_size, num_classes=num_classes)
    imagenet = config_complexity(config, 224, num_classes=1000)
    return {
        "params": here.params,
        "macs_m": round(here.macs / 1e6, 3),
        "conv_linear_macs_m": round(here.conv_linear_macs / 1e6, 3),
        "params_imagenet": imagenet.params,
        "macs_imagenet_m": round(imagenet.macs / 1e6, 3),
    }


def run_one(study: Study, variant: Variant, out: Path, *, nproc_per_node: int = 1, **train_options) -> dict:
    """Trains (or resumes) one run and returns its results row; failures are returned as a failed row."""
    run_dir = out / "runs" / variant.run_id
    row = {"run": variant.run_id, "key": variant.key, "model": variant.family, "kernels": variant.kernels}
    row["seed"] = variant.seed
    return experiment_runs.run_one(
        run_dir,
        lambda **resume: study.train_config(variant, run_dir, **train_options, **resume),
        row,
        nproc_per_node=nproc_per_node,
        describe=lambda metrics: complexity_fields(study, variant, metrics["classes"]),
    )


def _train_run(study: Study, out: Path, nproc_per_node: int, train_options: dict, variant: Variant) -> dict:
    """One run in a worker process of :func:`run_study` with ``jobs`` > 1."""
    return run_one(study, variant, out, nproc_per_node=nproc_per_node, **train_options)


def run_cost(study: Study, variant: Variant) -> float:
    """A run's expected training cost for ordering the runs dearest first: its model's MACs (at 10 classes;
    the head's share is small)."""
    return config_complexity(study.model_config(variant), study.img_size, num_classes=10).macs


def run_study(
    study: Study,
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    jobs: int = 1,
    retry_failed: bool = False,
    nproc_per_node: int = 1,
    log=print,
    **train_options,
) -> RunPlan:
    """Trains every run of ``study`` (or of its shard) not finished yet, appending a row per run.

    Args:
        study: the validated study.
        out: the study folder (results, run folders, latency, report).
        shard: ``(k, n)``: this process takes runs k, k + n, k + 2n, ... of :meth:`Study.runs`.
        jobs: runs trained at once, each in a worker process of its own (one per core or GPU; one thread each
            unless the study or ``threads`` says otherwise); a free worker takes the next run, seed by seed and
            the dearest variant of a seed first. On a machine with ``jobs x nproc_per_node`` GPUs each worker
            gets its own.
        retry_failed: train runs recorded as failed again (default: keep their failure).
        nproc_per_node: >1 trains each run under torchrun with this many processes (DDP).
        log: where progress lines go.
        **train_options: training options for every run that are not part of the study's identity
            (``device``, ``workers``, ``threads``, ``progress``, ``amp``).

    Returns:
        The plan that was carried out.

    Raises:
        StudyError: options that no run can train with.
        mixnet.experiment.folder.ForeignFolderError: ``out`` holds another study.
    """
    out = Path(out)
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    try:  # options given for every run (device, amp, ...) are checked before anything is written
        study.train_config(study.runs()[0], out / "runs" / "check", **train_options)
    except ValueError as e:
        raise StudyError(f"{study.source or study.name}: {e}") from None
    prepare_folder(study, out)
    if retry_failed:  # a retried failure starts over; its last checkpoint is kept beside, not deleted
        check_shard(shard)
        mine = {v.run_id for i, v in enumerate(study.runs()) if i % shard[1] == shard[0]}
        for run_id in rows_failed(out) & mine:
            checkpoint = out / "runs" / run_id / CHECKPOINT_NAME
            if checkpoint.exists():
                checkpoint.replace(checkpoint.with_name("last.failed.pth"))
    plan = plan_runs(study, out, shard, retry_failed)
    results = out / results_name(shard)
    log(
        f"study {study.name}: {len(plan.todo)} run(s) to train ({len(plan.resume)} resumed), "
        f"{len(plan.done)} done, {len(plan.failed)} failed before"
        + (" (not retried; --retry-failed trains them again)" if plan.failed else "")
    )
    n = len(plan.todo)
    if jobs > 1 and n > 1:
        jobs = min(jobs, n)
        log(f"{jobs} runs at a time: seed by seed, the dearest variant first, each to the first free worker")
        if not study.train.get("threads") and not train_options.get("threads"):
            train_options = {**train_options, "threads": 1}  # runs side by side: one core each, not all of them
        train = functools.partial(_train_run, study, out, nproc_per_node, train_options)
        device = train_options.get("device", study.train.get("device"))
        groups = gpu_groups(jobs, nproc_per_node, device)
        seeds = list(study.seeds)
        priority = lambda v: (-seeds.index(v.seed), run_cost(study, v))  # noqa: E731 - seed-major, dearest first
        finished = run_parallel(train, plan.todo, jobs, priority=priority, device_groups=groups)
    else:
        finished = _in_turn(study, out, plan, nproc_per_node, train_options, log)
    with contextlib.closing(finished):  # a failure here stops the workers at once
        for i, (variant, row) in enumerate(finished, 1):
            append_row(results, row)  # this process alone writes the results, as each run ends
            status = f"top-1 {row['top1']:.2f}%" if row["status"] == "ok" else f"FAILED: {row['error']}"
            log(f"[{i}/{n}] {variant.run_id}: {status} ({row['train_seconds']:.0f} s)")
    return plan


def _in_turn(study: Study, out: Path, plan: RunPlan, nproc_per_node: int, train_options: dict, log):
    """The runs of ``plan`` one after another in this process, as (variant, row)."""
    for i, variant in enumerate(plan.todo, 1):
        log(f"[{i}/{len(plan.todo)}] {variant.run_id}" + (" (resuming)" if variant.run_id in plan.resume else ""))
        yield variant, run_one(study, variant, out, nproc_per_node=nproc_per_node, **train_options)

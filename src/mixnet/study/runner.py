"""Running a study: every (model, kernel spec, seed) trained with the project's training code, resumable.

Runs go seed-major (all variants once before any second seed). A run's row is appended to the results
file when it ends; a run that raises is recorded as failed with its error and the study goes on. A study
started again in the same folder skips the finished runs and resumes an interrupted one from its last
checkpoint. With ``nproc_per_node > 1`` each run trains under torchrun (DDP); ``shard=(k, n)`` takes
every n-th run, so n processes (GPUs, nodes) can share one study folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from mixnet.io.atomic import atomic_write
from mixnet.models.complexity import config_complexity
from mixnet.models.registry import resolve_config
from mixnet.study.results import append_row, read_rows, results_name
from mixnet.study.spec import Study, StudyError, Variant

STUDY_FILE = "study.json"


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
    """Creates ``out`` and records the study in it; a folder holding another study is refused (not overwritten)."""
    out.mkdir(parents=True, exist_ok=True)
    record = study_record(study)
    path = out / STUDY_FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise StudyError(f"{path} cannot be read ({e}); use another --out folder") from None
        if saved.get("study") != record["study"]:
            changed = sorted(k for k in record["study"] if saved.get("study", {}).get(k) != record["study"][k])
            raise StudyError(
                f"{out} holds results of a different study (differs in: {', '.join(changed) or 'everything'}); "
                "use another --out folder, or the same study file and options to resume"
            )
        return
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def study_record(study: Study) -> dict:
    """What identifies a study's results: every field but its source file."""
    d = asdict(study)
    d.pop("source")
    d["latency"] = asdict(study.latency)
    return {"study": json.loads(json.dumps(d)), "source": study.source}


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
    resume = [v.run_id for v in todo if (out / "runs" / v.run_id / "last.pth").exists()]
    others = [v for i, v in enumerate(runs) if i % shard[1] != shard[0] and v.run_id not in rows]
    return RunPlan(todo, resume, done, [] if retry_failed else failed, len(others))


def complexity_fields(study: Study, variant: Variant, num_classes: int) -> dict:
    """Params and MACs of a run's model, at the study's setting and at ImageNet's (224 px, 1000 classes)."""
    config = resolve_config(variant.model, variant.kernels, **study.arch_overrides())
    here = config_complexity(config, study.img_size, num_classes=num_classes)
    imagenet = config_complexity(config, 224, num_classes=1000)
    return {
        "params": here.params,
        "macs_m": round(here.macs / 1e6, 3),
        "conv_linear_macs_m": round(here.conv_linear_macs / 1e6, 3),
        "params_imagenet": imagenet.params,
        "macs_imagenet_m": round(imagenet.macs / 1e6, 3),
    }


def _final_metrics(history: list[dict]) -> tuple[float, float | None]:
    final = history[-1]
    if final.get("ema_val_top1") is not None:
        return float(final["ema_val_top1"]), final.get("ema_val_top5")
    return float(final["val_top1"]), final.get("val_top5")


def metrics_of(result) -> dict:
    """The final metrics of a :class:`mixnet.train.TrainResult` (rank 0's: the others keep no history)."""
    top1, top5 = _final_metrics(result.history)
    return {"top1": top1, "top5": top5, "epochs": len(result.history), "classes": len(result.class_names)}


def train_in_process(config) -> dict:
    """Trains one run here; returns its final metrics."""
    from mixnet.train.loop import train

    return metrics_of(train(config))


def train_with_torchrun(config, nproc_per_node: int) -> dict:
    """Trains one run under torchrun (DDP over ``nproc_per_node`` local processes); returns its final metrics.

    Raises:
        RuntimeError: the run failed (with the end of its output).
    """
    with tempfile.TemporaryDirectory() as tmp:
        cfg, res = Path(tmp) / "config.json", Path(tmp) / "result.json"
        cfg.write_text(json.dumps(config.to_dict()))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc_per_node}",
            "-m",
            "mixnet.study.worker",
            str(cfg),
            str(res),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not res.exists():
            raise RuntimeError(f"torchrun exited with {proc.returncode}: {_root_cause(proc.stderr or proc.stdout)}")
        return json.loads(res.read_text())


def _root_cause(output: str) -> str:
    """The exception a failed torchrun's processes raised (the last ``...Error: ...`` line), else its last lines."""
    pattern = r"^(?:\[rank\d+\]:\s*)?((?:\w+\.)*\w+(?:Error|Exception|Interrupt)\b.*)$"
    errors = re.findall(pattern, output, flags=re.M)
    errors = [e for e in errors if "ChildFailedError" not in e]
    return errors[-1] if errors else " | ".join(output.strip().splitlines()[-3:])


def run_one(study: Study, variant: Variant, out: Path, *, nproc_per_node: int = 1, **train_options) -> dict:
    """Trains (or resumes) one run and returns its results row; failures are returned as a failed row."""
    run_dir = out / "runs" / variant.run_id
    checkpoint = run_dir / "last.pth"
    extra = dict(train_options)
    if checkpoint.exists():
        extra["resume"] = str(checkpoint)
    row = {"run": variant.run_id, "key": variant.key, "model": variant.model, "kernels": variant.kernels}
    row["seed"] = variant.seed
    start = time.perf_counter()
    try:
        config = study.train_config(variant, run_dir, **extra)
        if nproc_per_node > 1:
            metrics = train_with_torchrun(config, nproc_per_node)
        else:
            metrics = train_in_process(config)
        row.update(status="ok", top1=metrics["top1"], top5=metrics["top5"], epochs=metrics["epochs"])
        row["classes"] = metrics["classes"]
        row.update(complexity_fields(study, variant, metrics["classes"]))
    except Exception as e:  # noqa: BLE001 - a failed variant is recorded and the study goes on
        row.update(status="failed", error=f"{type(e).__name__}: {e}")
        warnings.warn(f"study run {variant.run_id} failed: {row['error']}", stacklevel=2)
        if not isinstance(e, StudyError):
            traceback.print_exc()
    row.update(train_seconds=round(time.perf_counter() - start, 1), finished_at=time.time())
    return row


def run_study(
    study: Study,
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
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
        retry_failed: train runs recorded as failed again (default: keep their failure).
        nproc_per_node: >1 trains each run under torchrun with this many processes (DDP).
        log: where progress lines go.
        **train_options: training options for every run that are not part of the study's identity
            (``device``, ``workers``, ``threads``, ``progress``, ``amp``).

    Returns:
        The plan that was carried out.

    Raises:
        StudyError: ``out`` holds another study.
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
            checkpoint = out / "runs" / run_id / "last.pth"
            if checkpoint.exists():
                checkpoint.replace(checkpoint.with_name("last.failed.pth"))
    plan = plan_runs(study, out, shard, retry_failed)
    results = out / results_name(shard)
    log(
        f"study {study.name}: {len(plan.todo)} run(s) to train ({len(plan.resume)} resumed), "
        f"{len(plan.done)} done, {len(plan.failed)} failed before"
        + (" (not retried; --retry-failed trains them again)" if plan.failed else "")
    )
    for i, variant in enumerate(plan.todo, 1):
        log(f"[{i}/{len(plan.todo)}] {variant.run_id}" + (" (resuming)" if variant.run_id in plan.resume else ""))
        row = run_one(study, variant, out, nproc_per_node=nproc_per_node, **train_options)
        append_row(results, row)
        status = f"top-1 {row['top1']:.2f}%" if row["status"] == "ok" else f"FAILED: {row['error']}"
        log(f"[{i}/{len(plan.todo)}] {variant.run_id}: {status} ({row['train_seconds']:.0f} s)")
    return plan

"""The end of a study: latency of every variant, the summary and results tables, plots and report."""

from __future__ import annotations

import json
from pathlib import Path

from mixnet.experiment.folder import read_record
from mixnet.experiment.rows import write_csv, write_json, write_text
from mixnet.models.complexity import config_complexity
from mixnet.models.registry import resolve_config
from mixnet.study.results import RUN_COLUMNS, SUMMARY_COLUMNS, read_rows, summarize
from mixnet.study.runner import STUDY_FILE
from mixnet.study.spec import Study, StudyError, study_from_dict

LATENCY_FILE = "latency.json"
COMMAND_FILE = "command.txt"


def read_study(out: str | Path) -> Study:
    """The study recorded in a study folder (its data path need not exist here).

    Raises:
        mixnet.experiment.folder.ForeignFolderError: no readable study record in ``out``.
    """
    record = read_record(out, STUDY_FILE, kind="study")
    here = str(Path(out) / STUDY_FILE)
    try:
        return study_from_dict(record["study"], record.get("source", here), check_data=False)
    except StudyError:
        # The study file's folder is elsewhere now: its architecture files were copied into the study folder.
        return study_from_dict(record["study"], here, check_data=False)


def latency_table(study: Study, out: Path, num_classes: int, measure: bool, progress: bool) -> dict | None:
    """The saved latencies when they cover this study with its settings, else new ones (or None)."""
    from dataclasses import asdict

    path = out / LATENCY_FILE
    keys = sorted(v.key for v in study.architectures())
    settings = {**asdict(study.latency), "img_size": study.img_size, "num_classes": num_classes}
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings and sorted(saved.get("ms", {})) == keys:
            return saved
    if not measure:
        return None
    from mixnet.measure.machine import machine_info
    from mixnet.study.latency import measure_latency

    table = {
        "settings": settings,
        "machine": machine_info(study.latency.threads),
        "ms": measure_latency(study, num_classes, progress=progress),
    }
    write_json(path, table)
    return table


def macs_at_224(model: str, kernels: str) -> float:
    """MACs (millions) of a registered model with a kernel spec, at 224 px and 1000 classes (width 1.0)."""
    return config_complexity(resolve_config(model, kernels), 224).macs / 1e6


def write_report(
    out: str | Path, *, command: str = "", measure_latency: bool = True, progress: bool = False
) -> dict[str, Path]:
    """Writes results.csv, summary.csv, latency.json, the plots and report.md into the study folder ``out``.

    Latency is measured only when every run has a row (so it is never timed while runs train) and no
    saved measurement covers the study's variants and settings.

    Returns:
        The written files by name.
    """
    from mixnet.experiment.curves import plot_learning_curves
    from mixnet.study.report import markdown, plot

    out = Path(out)
    command_file = out / COMMAND_FILE
    if command:
        write_text(command_file, command + "\n")
    elif command_file.exists():  # a rewritten report keeps the command that ran the study
        command = command_file.read_text().strip()
    study = read_study(out)
    rows = read_rows(out)
    wanted = [v.run_id for v in study.runs()]
    ordered = [rows[r] for r in wanted if r in rows]
    ok = [r for r in ordered if r["status"] == "ok"]
    complete = len(ordered) == len(wanted)
    classes = next((r["classes"] for r in ok if r.get("classes")), None)
    latency = None
    if classes is not None:
        latency = latency_table(study, out, classes, measure_latency and complete, progress)
    summary = summarize(ordered, [v.key for v in study.architectures()], (latency or {}).get("ms"))
    files = {"results.csv": out / "results.csv", "summary.csv": out / "summary.csv"}
    write_csv(files["results.csv"], ordered, RUN_COLUMNS)
    write_csv(files["summary.csv"], summary, SUMMARY_COLUMNS)
    if ok:
        for p in plot(summary, study.paper, macs_at_224, out, study.name):
            files[p.name] = p
        curves = plot_learning_curves(ok, [v.key for v in study.architectures()], out, study.name)
        if curves is not None:
            files[curves.name] = curves
    failures = [r for r in ordered if r["status"] == "failed"]
    text = markdown(study, summary, failures, latency, command, ok)
    if not complete:
        text = text.replace(
            "\n## Setup", f"\n**Partial: {len(ordered)} of {len(wanted)} runs have finished.**\n\n## Setup", 1
        )
    files["report.md"] = out / "report.md"
    write_text(files["report.md"], text)
    if latency is not None:
        files[LATENCY_FILE] = out / LATENCY_FILE
    return files

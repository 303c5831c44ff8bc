"""The experiment layer: folders that refuse another experiment, rows that survive a kill, runs, recipes."""

import json

import pytest

from mixnet.experiment import runs
from mixnet.experiment.folder import ForeignFolderError, claim_folder, read_record
from mixnet.experiment.rows import append_row, read_jsonl, read_runs
from mixnet.train.config import TrainConfig


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_records_its_experiment_and_refuses_another_untouched(tmp_path):
    out = tmp_path / "exp"
    record = {"lr": 0.1, "seeds": [0, 1]}
    claim_folder(out, "exp.json", record, kind="study")
    assert json.loads((out / "exp.json").read_text()) == record
    claim_folder(out, "exp.json", dict(record), kind="study")  # the same experiment resumes
    (out / "results.jsonl").write_text('{"run": "a"}\n')
    before = _files(out)
    with pytest.raises(ForeignFolderError, match="holds results of a different study \\(differs in: lr\\)"):
        claim_folder(out, "exp.json", {**record, "lr": 0.2}, kind="study")
    assert _files(out) == before
    # An option added since the record was written counts as its default then; a renamed key is upgraded.
    claim_folder(out, "exp.json", {**record, "new": 1}, kind="study", defaults={"new": 1})
    with pytest.raises(ForeignFolderError, match="differs in: new"):
        claim_folder(out, "exp.json", {**record, "new": 2}, kind="study", defaults={"new": 1})
    claim_folder(out, "exp.json", {"rate": 0.1, "seeds": [0, 1]}, kind="s", upgrade=lambda r: {"rate": r["lr"], **r})
    (out / "exp.json").write_text('{"lr": 0.1, "se')  # a record cut short by a full disk
    with pytest.raises(ForeignFolderError, match="not a study folder \\(exp.json unreadable"):
        claim_folder(out, "exp.json", record, kind="study")
    with pytest.raises(ForeignFolderError, match="not a search folder"):
        read_record(tmp_path / "nothing", "search.json", kind="search")


def test_rows_survive_a_line_cut_by_a_kill_and_the_latest_row_wins(tmp_path):
    path = tmp_path / "results.jsonl"
    append_row(path, {"run": "a", "status": "failed", "finished_at": 1.0})
    append_row(path, {"run": "b", "status": "ok", "top1": 50.0, "finished_at": 2.0})
    append_row(path, {"run": "a", "status": "ok", "top1": 60.0, "finished_at": 3.0})
    whole = path.read_bytes()
    append_row(path, {"run": "c", "status": "ok", "top1": 70.0, "finished_at": 4.0})
    with open(path, "r+b") as f:  # the process died half-way through writing c's line
        f.truncate(len(whole) + 20)
    assert [r["run"] for r in read_jsonl(path)] == ["a", "b", "a"]
    rows = read_runs(path)
    assert set(rows) == {"a", "b"} and rows["a"]["top1"] == 60.0
    append_row(path, {"run": "d"})  # appends after the broken line still read
    assert "d" in read_runs([path, tmp_path / "missing.jsonl"])
    other = tmp_path / "shard.jsonl"
    append_row(other, {"run": "a", "status": "ok", "top1": 61.0, "finished_at": 2.5})  # older than a's latest
    assert read_runs([path, other])["a"]["top1"] == 60.0
    assert read_runs(path, key="arch") == {}


def test_the_final_metrics_of_a_run_are_the_ema_ones_when_kept():
    history = [{"val_top1": 10.0, "val_top5": 50.0, "ema_val_top1": 12.0, "ema_val_top5": 55.0}] * 2
    assert runs.final_metrics(history) == {"top1": 12.0, "top5": 55.0, "epochs": 2}
    plain = [{"val_top1": 10.0, "val_top5": 50.0, "ema_val_top1": None}]
    assert runs.final_metrics(plain) == {"top1": 10.0, "top5": 50.0, "epochs": 1}


def test_a_run_resumes_from_its_checkpoint_and_a_failure_is_a_row(tmp_path, monkeypatch):
    seen = []

    def fake(config):
        seen.append(config.resume)
        if config.seed == 1:
            raise RuntimeError("simulated crash")
        return {"top1": 70.0, "top5": 99.0, "epochs": 2, "classes": 4}

    monkeypatch.setattr(runs, "train_in_process", fake)
    recipe = runs.Recipe("short", {"epochs": 2})

    def make(seed, run_dir, **resume):
        return recipe.config(model="mobilenet_v2", data="digits", seed=seed, out=str(run_dir), **resume)

    run_dir = tmp_path / "r0"
    run_dir.mkdir()
    row = runs.record_run(
        tmp_path / "rows.jsonl",
        run_dir,
        lambda **kw: make(0, run_dir, **kw),
        {"run": "r0"},
        describe=lambda m: {"double": 2 * m["top1"]},
    )
    assert seen == [None] and row["status"] == "ok" and row["double"] == 140.0 and row["train_seconds"] >= 0
    assert __import__("torch").__version__.startswith(row["environment"]["torch"]) and row["environment"]["cpu"]
    assert set(row["environment"]) == {"cpu", *runs.TRAINING_PACKAGES}
    (run_dir / runs.CHECKPOINT_NAME).write_bytes(b"")
    runs.run_one(run_dir, lambda **kw: make(0, run_dir, **kw), {"run": "r0"})
    assert seen[-1] == str(run_dir / runs.CHECKPOINT_NAME)
    with pytest.warns(UserWarning, match="run r1 failed: RuntimeError: simulated crash"):
        failed = runs.record_run(
            tmp_path / "rows.jsonl", tmp_path / "r1", lambda **kw: make(1, tmp_path / "r1", **kw), {"run": "r1"}
        )
    assert failed["status"] == "failed" and "top1" not in failed
    assert {r["run"]: r["status"] for r in read_runs(tmp_path / "rows.jsonl").values()} == {"r0": "ok", "r1": "failed"}


def test_recipes_are_training_presets_with_overrides():
    config = runs.recipe("cluttered-digits").config(model="mobilenet_v2", data="digits", seed=3, lr=0.01)
    preset = TrainConfig.from_preset("short")
    assert config.lr == 0.01 and config.seed == 3 and config.epochs == 14 and config.hflip == 0.0
    assert config.warmup_epochs == preset.warmup_epochs  # what the recipe leaves alone is the preset's
    with pytest.raises(ValueError, match="unknown recipe 'nope'; recipes: cluttered-digits"):
        runs.recipe("nope")

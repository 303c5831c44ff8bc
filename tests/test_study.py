"""``mixnet study``: study files, their validation, the runner (failures, resume, shards), the report."""

import json
import math
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import write_digit_folder

from mixnet.cli import main
from mixnet.experiment import runs as runs_module
from mixnet.experiment.folder import ForeignFolderError
from mixnet.study import builtin_studies, load_study, plan_runs, read_study, run_study, write_report
from mixnet.study.report import trend_lines
from mixnet.study.results import read_rows
from mixnet.study.spec import StudyError
from mixnet.train import loop

_C = {"name": "c", "a": "k3", "b": "k3.5"}
TINY_TRAIN = {"epochs": 2, "batch_size": 16, "workers": 0, "threads": 1, "progress": False, "head_channels": 32}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A 4-class ImageFolder of real digits (16 train, 4 val per class)."""
    return write_digit_folder(tmp_path_factory.mktemp("digits4"), 4, (16, 4))


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _write(tmp_path: Path, folder: Path, name: str = "tiny.toml", **changes) -> Path:
    d = {
        "name": "tiny",
        "models": ["mobilenet_v2"],
        "width_mult": 0.25,
        "variants": ["k3", "k3.5"],
        "seeds": [0, 1],
        "data": str(folder),
        "img_size": 16,
        "train": dict(TINY_TRAIN),
        "latency": {"rounds": 2},
    }
    d.update(changes)
    d = {k: v for k, v in d.items() if v is not None}
    path = tmp_path / name
    path.write_text("\n".join(f"{k} = {_toml(v)}" for k, v in d.items()) + "\n")
    return path


def test_builtin_studies_are_valid():
    assert {"small", "fig1", "fig4", "split", "dilation"} <= set(builtin_studies())
    for name in builtin_studies():
        study = load_study(name, check_data=False)
        assert study.runs() and all(v.model.startswith("mobilenet_v") for v in study.runs())
    small = load_study("small")  # built-in data: validates with the data check too
    assert small.data == "cued-digits" and len(small.runs()) == 24 and small.seeds == (0, 1, 2, 3)
    assert small.arch_file("mobilenet_v2_cue").is_file() and len(small.contrasts) == 6
    assert [c.name for c in small.contrasts if c.positive_control] == ["3x3 vs 1x1 depthwise (k3 vs k1)"]
    with pytest.raises(StudyError, match="names no data: pass --data"):
        load_study("fig1")
    fig4 = load_study("fig4", check_data=False)
    assert "k3.5.7.9.11.13" in fig4.variants and len(fig4.runs()) == 22


def test_a_recipe_gives_the_preset_and_options_a_train_table_overrides(tmp_path, folder):
    from mixnet.experiment.runs import RECIPES

    study = load_study(_write(tmp_path, folder, recipe="cluttered-digits", train={"epochs": 3}))
    expected = RECIPES["cluttered-digits"]
    assert study.preset == expected.preset and study.train == {**expected.options, "epochs": 3}
    config = study.train_config(study.runs()[0], tmp_path / "r")
    assert config.lr == expected.options["lr"] and config.epochs == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key.*colour"),
        ({"models": ["mobilenet_v3"]}, "unknown model 'mobilenet_v3'"),
        ({"variants": ["k3", "k4"]}, "variant 'k4'"),
        ({"variants": ["k3", "k3.5-wide"]}, "variant 'k3.5-wide'"),
        ({"data": "/no/such/folder"}, "data '/no/such/folder' is neither a folder"),
        ({"train": {"epochs": 1, "learning_rate": 0.1}}, "unknown training option.*learning_rate"),
        ({"train": {"epochs": 0}}, "epochs must be >= 1"),
        ({"train": {"seed": 3}}, r"\[train\] must not set seed"),
        ({"seeds": [0, 0]}, "seeds repeat"),
        ({"paper": ["fig9"]}, "unknown paper curve 'fig9'"),
        ({"variants": ["k3.5.7.9.11.13-exp"]}, "cannot split 8 channels into 6 exponential groups"),
        ({"latency": {"batch": 4}}, "unknown latency setting.*batch"),
        ({"img_size": None}, "missing key.*img_size"),
        ({"recipe": "imagenet"}, "unknown recipe 'imagenet'; recipes: cluttered-digits"),
        ({"recipe": "cluttered-digits", "preset": "short"}, "a recipe or a preset, not both"),
        ({"contrasts": [{"name": "c", "a": "k3", "b": "k5"}]}, "contrast variant 'k5' is not a variant of this study"),
        ({"contrasts": [{"name": "c", "a": "k3", "b": "mobilenet_v1-k3.5"}]}, "'mobilenet_v1-k3.5' is not a variant"),
        ({"contrasts": [{"name": "c", "a": "k3", "b": "mobilenet_v2-k3"}]}, "compares mobilenet_v2-k3 with itself"),
        ({"contrasts": [_C, {**_C, "a": "k3.5", "b": "k3"}]}, "contrast name.*repeat: c"),
        ({"contrasts": [_C, {**_C, "name": "again"}]}, "contrasts repeat a comparison: mobilenet_v2-k3.5 - "),
        ({"contrasts": [_C, {**_C, "name": "back", "a": _C["b"], "b": _C["a"]}]}, "contrasts repeat a comparison"),
        ({"train": {"seeded_augmentation": False}}, r"\[train\] must not set seeded_augmentation"),
        ({"contrasts": [{**_C, "control": True}]}, "contrast 1: unknown key.*control"),
        ({"contrasts": [{"name": "c", "a": "k3"}]}, "contrast 1: missing key.*b"),
        ({"contrasts": [{**_C, "positive_control": "yes"}]}, "positive_control must be true or false"),
        ({"contrasts": {"name": "c"}}, "contrasts must be a list of tables"),
    ],
)
def test_bad_study_files_name_the_problem(tmp_path, folder, change, message):
    with pytest.raises(StudyError, match=message):
        load_study(_write(tmp_path, folder, **change))


def test_bad_study_file_stops_the_cli_before_anything_trains(tmp_path, folder, capsys, monkeypatch):
    monkeypatch.setattr(runs_module, "train_in_process", lambda config: pytest.fail("trained"))
    path = _write(tmp_path, folder, variants=["k3", "k6"])
    assert main(["study", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "variant 'k6'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["study", "run", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read study file" in capsys.readouterr().err


def test_options_and_folders_are_checked_before_anything_is_written(tmp_path, folder):
    (tmp_path / "flat").mkdir()
    with pytest.raises(StudyError, match="has no train or val/ subfolder"):
        load_study(_write(tmp_path, folder, data=str(tmp_path / "flat")))
    study = load_study(_write(tmp_path, folder))
    with pytest.raises(StudyError, match="device 'tpu'"):
        run_study(study, tmp_path / "out", device="tpu", log=lambda *a: None)
    assert not (tmp_path / "out").exists()


def test_torchrun_failures_name_the_exception():
    output = (
        "[rank1]:   File x.py, line 3\n[rank1]: mixnet.io.files.CheckpointError: checkpoint 'a.pth' is damaged\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n====\nRoot Cause\n"
    )
    assert runs_module.root_cause(output) == "mixnet.io.files.CheckpointError: checkpoint 'a.pth' is damaged"


def test_yaml_and_toml_give_the_same_study(tmp_path, folder):
    toml = load_study(_write(tmp_path, folder))
    text = textwrap.dedent(
        f"""\
        name: tiny
        models: [mobilenet_v2]
        width_mult: 0.25
        variants: [k3, "3.5"]
        seeds: [0, 1]
        data: {folder}
        img_size: 16
        train: {json.dumps(TINY_TRAIN)}
        latency: {{rounds: 2}}
        """
    )
    (tmp_path / "tiny.yaml").write_text(text)
    yaml = load_study(tmp_path / "tiny.yaml")
    assert yaml.variants == ("k3", "k3.5")  # canonical kernel specs
    assert {**vars(yaml), "source": ""} == {**vars(toml), "source": ""}


def test_shards_partition_the_runs(tmp_path, folder):
    study = load_study(_write(tmp_path, folder, seeds=[0, 1, 2]))
    shards = [plan_runs(study, tmp_path / "out", (k, 3)).todo for k in range(3)]
    ids = [v.run_id for shard in shards for v in shard]
    assert sorted(ids) == sorted(v.run_id for v in study.runs()) and len(set(ids)) == len(ids)
    assert [v.run_id for v in study.runs()][:2] == ["mobilenet_v2-k3-s0", "mobilenet_v2-k3.5-s0"]  # seed-major


def _fake_trainer(calls: list, fail: set):
    def train(config):
        calls.append((config.kernels, config.seed))
        if (config.kernels, config.seed) in fail:
            raise RuntimeError("simulated crash")
        top1 = {"k3": 80.0, "k3.5": 85.0}[config.kernels] + config.seed
        return {"top1": top1, "top5": 99.0, "epochs": 2, "classes": 4}

    return train


def test_failed_runs_are_recorded_and_the_study_goes_on(tmp_path, folder, monkeypatch):
    study = load_study(_write(tmp_path, folder))
    out = tmp_path / "out"
    calls: list = []
    monkeypatch.setattr(runs_module, "train_in_process", _fake_trainer(calls, {("k3.5", 0)}))
    with pytest.warns(UserWarning, match="mobilenet_v2-k3.5-s0 failed: RuntimeError: simulated crash"):
        run_study(study, out, log=lambda *a: None)
    assert calls == [("k3", 0), ("k3.5", 0), ("k3", 1), ("k3.5", 1)]
    rows = read_rows(out)
    assert rows["mobilenet_v2-k3.5-s0"]["status"] == "failed"
    assert "simulated crash" in rows["mobilenet_v2-k3.5-s0"]["error"]
    assert rows["mobilenet_v2-k3.5-s1"] == {**rows["mobilenet_v2-k3.5-s1"], "status": "ok", "top1": 86.0}

    calls.clear()
    plan = run_study(study, out, log=lambda *a: None)  # finished runs are not rerun, the failed one is kept
    assert calls == [] and plan.failed == ["mobilenet_v2-k3.5-s0"]
    monkeypatch.setattr(runs_module, "train_in_process", _fake_trainer(calls, set()))
    run_study(study, out, retry_failed=True, log=lambda *a: None)
    assert calls == [("k3.5", 0)] and read_rows(out)["mobilenet_v2-k3.5-s0"]["top1"] == 85.0

    files = write_report(out, measure_latency=False)
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("key,model,kernels,seeds,failed,top1_mean,top1_std")
    assert summary[2].startswith("mobilenet_v2-k3.5,mobilenet_v2,k3.5,2,0,85.5,0.7071")
    assert {"top1_vs_kernel.png", "top1_vs_macs.png", "report.md"} <= set(files)


def test_a_folder_of_another_study_is_refused_untouched(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(runs_module, "train_in_process", _fake_trainer([], set()))
    out = tmp_path / "out"
    run_study(load_study(_write(tmp_path, folder)), out, log=lambda *a: None)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = load_study(_write(tmp_path, folder, name="other.toml", variants=["k3", "k5"]))
    with pytest.raises(ForeignFolderError, match="holds results of a different study.*variants"):
        run_study(other, out, log=lambda *a: None)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_killed_study_resumes_without_rerunning_finished_runs(tmp_path, folder, monkeypatch):
    """Real training: the study is killed right after the first checkpoint of its second run."""
    study = load_study(_write(tmp_path, folder, seeds=[0]))
    out = tmp_path / "out"
    real_save = loop.save_checkpoint
    saves = []

    def save_then_maybe_die(path, ckpt):
        real_save(path, ckpt)
        saves.append(Path(path).parent.name)
        if saves.count("mobilenet_v2-k3.5-s0") == 1 and saves[-1] == "mobilenet_v2-k3.5-s0":
            raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(loop, "save_checkpoint", save_then_maybe_die)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, log=lambda *a: None)
    rows = read_rows(out)
    assert list(rows) == ["mobilenet_v2-k3-s0"] and rows["mobilenet_v2-k3-s0"]["status"] == "ok"
    first_weights = (out / "runs/mobilenet_v2-k3-s0/model.safetensors").read_bytes()
    assert torch.load(out / "runs/mobilenet_v2-k3.5-s0/last.pth", weights_only=True)["epoch"] == 1

    lines: list[str] = []
    plan = run_study(study, out, log=lines.append)
    assert plan.done == ["mobilenet_v2-k3-s0"] and plan.resume == ["mobilenet_v2-k3.5-s0"]
    assert any("(resuming)" in line for line in lines)
    assert saves.count("mobilenet_v2-k3-s0") == 2  # its two epochs, from the first invocation only
    assert (out / "runs/mobilenet_v2-k3-s0/model.safetensors").read_bytes() == first_weights
    rows = read_rows(out)
    assert rows["mobilenet_v2-k3.5-s0"]["status"] == "ok" and rows["mobilenet_v2-k3.5-s0"]["epochs"] == 2
    metrics = (out / "runs/mobilenet_v2-k3.5-s0/metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["epoch"] for m in metrics] == [1, 2]  # resumed, not restarted
    # The row keeps the whole learning curve, the epoch before the kill included, as the metrics file has it.
    history = rows["mobilenet_v2-k3.5-s0"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert [h["train_loss"] for h in history] == pytest.approx([json.loads(m)["train_loss"] for m in metrics])
    assert history[-1]["val_top1"] == pytest.approx(rows["mobilenet_v2-k3.5-s0"]["top1"])

    files = write_report(out)  # every run finished: latency is measured now
    latency = json.loads(files["latency.json"].read_text())
    assert set(latency["ms"]) == {"mobilenet_v2-k3", "mobilenet_v2-k3.5"} and min(latency["ms"].values()) > 0
    report = files["report.md"].read_text()
    assert "| mobilenet_v2-k3.5 |" in report and "Partial" not in report
    assert read_study(out).variants == study.variants


def _summary(points: dict[str, list[float]]) -> list[dict]:
    out = []
    for kernels, runs in points.items():
        mean = sum(runs) / len(runs)
        std = math.sqrt(sum((r - mean) ** 2 for r in runs) / (len(runs) - 1)) if len(runs) > 1 else 0.0
        out.append(
            {
                "key": f"m-{kernels}",
                "model": "mobilenet_v2",
                "kernels": kernels,
                "seeds": len(runs),
                "top1_mean": mean,
                "top1_std": std,
                "top1_runs": runs,
                "top1_by_seed": dict(enumerate(runs)),
                "macs_m": {"k3": 1, "k5": 2, "k7": 3, "k9": 4}.get(kernels, 1.5 + len(kernels) / 10),
                "macs_imagenet_m": 300,
            }
        )
    return out


def test_trend_statements_follow_the_numbers():
    """Verdicts rest on paired, Holm-corrected contrasts: a consistent per-seed shift resolves, a seed spread
    as large as the shift does not, and one seed never does."""
    rise_fall = _summary(
        {"k3": [80, 80.2, 79.8], "k5": [84, 84.1, 83.9], "k7": [85, 85.2, 84.8], "k9": [82, 82.1, 81.9]}
    )
    text = " ".join(trend_lines(rise_fall))
    assert "single kernel size** (paper: better up to about 7x7-9x9, then worse): appears" in text
    assert "k5 - k3: +4.00 points (95% CI" in text and "Holm-corrected" in text
    # The same means, but seed effects shared by every variant: unpaired they overlap, paired they resolve.
    shared = _summary({"k3": [70, 80, 90], "k5": [71, 81.2, 91.1], "k7": [72.1, 82, 92.2]})
    assert "appears" in " ".join(trend_lines(shared)).split(". ")[0]
    flat = _summary({"k3": [80, 84, 76], "k5": [81, 77, 85], "k7": [79, 83, 75]})
    assert "not resolved (no step is significant" in " ".join(trend_lines(flat))
    mixed = _summary({"k3": [80, 80.1, 79.9], "k5": [81, 81.1, 80.9], "k3.5": [83, 83.1, 82.9], "k3.5.7": [84, 84, 84]})
    text = " ".join(trend_lines(mixed))
    assert (
        "MixConv vs the single kernel of the same largest size** (paper: MixConv more accurate at fewer MACs): appears"
        in text
    )
    assert "k3.5 - k5: +2.00 points" in text
    one_seed = " ".join(trend_lines(_summary({"k3": [80], "k5": [90], "k7": [99]})))
    assert "not resolved" in one_seed and "one seed: no significance can be claimed" in one_seed


def test_cli_list_show_and_dry_run(capsys):
    assert main(["study", "list"]) == 0
    out = capsys.readouterr().out
    assert "small" in out and "fig4" in out and "24 runs" in out
    assert main(["study", "show", "fig4"]) == 0
    out = capsys.readouterr().out
    assert 'name = "fig4"' in out and "| mobilenet_v1 | k3.5.7.9.11.13 | 1.0 |" in out
    assert main(["study", "run", "small", "--dry-run", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "6 runs" in out and "TMAC" in out and "0.000" not in out
    assert "| mobilenet_v2_cue | k3 | 0.35 | 24,122 | 2.565 |" in out  # the 10-class head its results count
    assert "10-class head" in out


@pytest.mark.slow
def test_each_run_can_train_under_torchrun(tmp_path, folder, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    study = load_study(_write(tmp_path, folder, variants=["k3.5"], seeds=[0], train={**TINY_TRAIN, "epochs": 1}))
    out = tmp_path / "out"
    run_study(study, out, nproc_per_node=2, device="cpu", log=lambda *a: None)
    row = read_rows(out)["mobilenet_v2-k3.5-s0"]
    assert row["status"] == "ok", row.get("error")
    assert row["epochs"] == 1 and 0 <= row["top1"] <= 100 and row["classes"] == 4
    assert (out / "runs/mobilenet_v2-k3.5-s0/model.safetensors").exists()


def test_jobs_hand_out_runs_seed_by_seed_dearest_first_one_thread_each(tmp_path, folder, monkeypatch):
    from mixnet.study import runner

    train = {k: v for k, v in TINY_TRAIN.items() if k != "threads"}  # a study that names no thread count
    study = load_study(_write(tmp_path, folder, variants=["k3", "k3.5.7", "k3.5"], seeds=[1, 0], train=train))
    seen = {}

    def fake_parallel(fn, items, jobs, *, priority, device_groups):
        seen.update(jobs=jobs, options=fn.args[3], groups=device_groups)
        ordered = sorted(items, key=priority, reverse=True)
        seen["order"] = [v.run_id for v in ordered]
        return ((v, {"run": v.run_id, "status": "ok", "top1": 50.0, "train_seconds": 1.0}) for v in ordered)

    monkeypatch.setattr(runner, "run_parallel", fake_parallel)
    run_study(study, tmp_path / "out", jobs=8, device="cpu", log=lambda *a: None)
    assert seen["order"] == [f"mobilenet_v2-{k}-s{s}" for s in (1, 0) for k in ("k3.5.7", "k3.5", "k3")]
    assert seen["jobs"] == 6 and seen["options"]["threads"] == 1 and seen["groups"] is None
    assert set(read_rows(tmp_path / "out")) == set(seen["order"])  # written here, by the calling process


@pytest.mark.slow
def test_jobs_train_runs_at_once_with_the_rows_of_one_at_a_time(tmp_path, folder):
    """Real training in two worker processes: the same rows as in turn here, written by this process alone."""
    study = load_study(_write(tmp_path, folder, seeds=[0], train={**TINY_TRAIN, "epochs": 1}))
    lines: list[str] = []
    run_study(study, tmp_path / "jobs", jobs=2, device="cpu", log=lines.append)
    run_study(study, tmp_path / "in_turn", device="cpu", log=lambda *a: None)
    assert [p.name for p in (tmp_path / "jobs").glob("results*.jsonl")] == ["results.jsonl"]
    together, alone = read_rows(tmp_path / "jobs"), read_rows(tmp_path / "in_turn")
    assert set(together) == {"mobilenet_v2-k3-s0", "mobilenet_v2-k3.5-s0"}
    for run, row in together.items():
        assert row["status"] == "ok", row.get("error")
        assert (row["top1"], row["history"]) == (alone[run]["top1"], alone[run]["history"])  # seeded: same numbers
    assert any("2 runs at a time" in line for line in lines) and sum("] mobilenet_v2-" in x for x in lines) == 2


def _arch_study(tmp_path: Path, **extra) -> Path:
    from mixnet.models.archfile import save_arch
    from mixnet.models.registry import resolve_config

    save_arch(tmp_path / "net.json", resolve_config("mobilenet_v2", width_mult=0.35))
    d = {"name": "w", "models": ["net.json"], "variants": ["k3", "k5", "k3@w0.5"], "seeds": [0, 1], "data": "digits"}
    d |= {"img_size": 32} | extra
    path = tmp_path / "w.toml"
    path.write_text("\n".join(f"{k} = {_toml(v)}" for k, v in d.items()) + "\n")
    return path


def test_arch_file_models_and_variants_with_a_width_of_their_own(tmp_path):
    from mixnet.models.archfile import load_arch

    study = load_study(_arch_study(tmp_path, contrasts=[{"name": "wider", "a": "k3", "b": "k3@w0.50"}]))
    keys = [v.key for v in study.architectures()]
    assert keys == ["net-k3", "net-k5", "net@w0.5-k3"] and len(study.runs()) == 6
    assert study.contrasts[0].a == "net-k3" and study.contrasts[0].b == "net@w0.5-k3"
    wide = study.architectures()[2]
    assert (wide.width_mult, wide.run_id) == (0.5, "net@w0.5-k3-s0")
    config = study.train_config(wide, tmp_path / "run")
    assert config.arch == str(tmp_path / "net.json") and config.width_mult == 0.5 and config.kernels == "k3"
    assert study.train_config(study.architectures()[0], tmp_path / "run").width_mult is None  # the file's 0.35
    assert study.model_config(wide) == load_arch(tmp_path / "net.json")[1].replace(width_mult=0.5).with_kernels("k3")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"variants": ["k3", "k3@wide"]}, "width after '@w' must be a number"),
        ({"variants": ["k3", "k3@w0"]}, "width must be > 0"),
        ({"variants": ["k3@w0.5", "k3@w0.50"]}, "variants repeat"),
        ({"models": ["missing.json"]}, "architecture file 'missing.json' .beside the study file.: cannot read"),
        ({"contrasts": [{"name": "x", "a": "k3", "b": "k3@w0.7"}]}, "contrast variant 'k3@w0.7' is not a variant"),
    ],
)
def test_bad_arch_files_widths_and_references_are_named(tmp_path, extra, message):
    with pytest.raises(StudyError, match=message):
        load_study(_arch_study(tmp_path, **extra))


def test_a_folder_of_the_earlier_small_study_is_refused_before_anything_is_written(tmp_path):
    """The earlier ``small`` (cluttered digits, unpaired seeds, no contrasts): its folder is not mixed with the new."""
    out = tmp_path / "small"
    out.mkdir()
    old = Path(__file__).parent / "data" / "small_study_cluttered.json"
    (out / "study.json").write_bytes(old.read_bytes())
    with pytest.raises(ForeignFolderError, match=r"holds results of a different study \(differs in: .*data.*pairing"):
        run_study(load_study("small"), out, log=lambda *a: None)
    assert (out / "study.json").read_bytes() == old.read_bytes() and [p.name for p in out.iterdir()] == ["study.json"]
    assert main(["study", "run", "small", "--out", str(out)]) == 2


def test_a_study_folder_keeps_its_architecture_files_and_reports_without_the_study_file(tmp_path, monkeypatch):
    from mixnet.study import read_study

    def train(config):
        assert config.arch and config.kernels in ("k3", "k5")
        width = 1.0 if config.width_mult is None else config.width_mult
        return {"top1": 80.0 + 10 * width + config.seed, "top5": 99.0, "epochs": 2, "classes": 10}

    monkeypatch.setattr(runs_module, "train_in_process", train)
    home = tmp_path / "home"
    home.mkdir()
    study = load_study(_arch_study(home, contrasts=[{"name": "wider", "a": "k3", "b": "k3@w0.5"}]))
    out = tmp_path / "out"
    run_study(study, out, log=lambda *a: None)
    assert (out / "net.json").read_bytes() == (home / "net.json").read_bytes()
    rows = read_rows(out)
    assert rows["net@w0.5-k3-s1"]["model"] == "net@w0.5" and rows["net@w0.5-k3-s1"]["top1"] == 86.0
    for p in home.iterdir():  # the study file and its architecture file are gone
        p.unlink()
    assert read_study(out).arch_file("net") == out / "net.json"
    report = write_report(out, measure_latency=False)["report.md"].read_text()
    assert "wider" in report

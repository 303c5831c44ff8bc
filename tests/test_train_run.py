"""Whole training runs on a tiny MixNet and ~200 16x16 images: resume, DDP, bad input, export.

The data set is an ImageFolder of real digits (from the built-in set) written to a temporary folder,
small enough that every run takes seconds.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_digit_folder
from PIL import Image
from safetensors import safe_open

import mixnet
from mixnet.cli import main
from mixnet.io.files import CheckpointError
from mixnet.io.spec import ModelSpec
from mixnet.train import loop
from mixnet.train.config import TrainConfig
from mixnet.train.engine import NonFiniteLossError
from mixnet.train.loaders import build_data
from mixnet.train.state import build_model

TINY = {"model": "mixnet_s", "width_mult": 0.25, "head_channels": 32, "img_size": 16}


@pytest.fixture(scope="module")
def digits10(tmp_path_factory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("digits10"), 10, (16, 4))


@pytest.fixture(scope="module")
def digits5(tmp_path_factory) -> Path:
    return write_digit_folder(tmp_path_factory.mktemp("digits5"), 5, (8, 2))


@pytest.fixture(scope="module")
def digits3(tmp_path_factory) -> Path:
    """A new user's first folder: 3 classes, 60 train / 24 val images (fewer than one default batch)."""
    return write_digit_folder(tmp_path_factory.mktemp("digits3"), 3, (20, 8))


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), batch_size=16, workers=0, threads=1, progress=False, **TINY)
    return TrainConfig.from_preset(kw.pop("preset", "paper"), **(base | kw))


def _resume_config(data: Path, out: Path) -> TrainConfig:
    # The paper recipe (TF RMSProp, step schedule, EMA) with mixup and dropout, so the optimizer state,
    # schedule position, EMA and RNG streams all matter for an exact resume.
    return _config(data, out, epochs=2, warmup_epochs=0.5, decay_epochs=0.5, mixup=0.2, deterministic=True, lr=0.01)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_weights(digits10, tmp_path, monkeypatch):
    was_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        whole = loop.train(_resume_config(digits10, tmp_path / "whole"))
        assert torch.backends.cudnn.benchmark is True  # deterministic mode turned it off only for the run
    finally:
        torch.backends.cudnn.benchmark = was_benchmark
    assert [r["epoch"] for r in whole.history] == [1, 2]

    real_save = loop.save_checkpoint

    def save_then_die(path, ckpt):
        real_save(path, ckpt)
        raise KeyboardInterrupt  # killed right after epoch 1's checkpoint

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(_resume_config(digits10, tmp_path / "broken"))
    monkeypatch.undo()
    first = torch.load(tmp_path / "broken" / "last.pth", weights_only=True)
    assert first["epoch"] == 1
    resumed = loop.train(
        _resume_config(digits10, tmp_path / "broken").replace(resume=str(tmp_path / "broken/last.pth"))
    )

    a = torch.load(whole.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    assert b["epoch"] == 2 and b["step"] == a["step"]
    for key in ("model", "model_ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    assert not torch.equal(first["model"]["classifier.weight"], b["model"]["classifier.weight"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    assert a["scheduler"] == b["scheduler"]
    # The metrics files continue: one row per epoch, no duplicate of epoch 1.
    rows = [json.loads(x) for x in (tmp_path / "broken/metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] == whole.history[1]["train_loss"]


def test_run_folder_has_everything(digits10, tmp_path):
    import torch.distributed as dist

    # A process group the caller set up (world size 1: the run trains alone) outlives the run.
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        r = loop.train(_config(digits10, tmp_path / "run", epochs=2, preset="short"))
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
    names = {p.name for p in r.run_dir.iterdir()}
    assert {
        "config.json",
        "last.pth",
        "model.safetensors",
        "metrics.jsonl",
        "metrics.csv",
        "loss.png",
        "accuracy.png",
    } <= names
    assert TrainConfig.from_dict(json.loads((r.run_dir / "config.json").read_text())).epochs == 2
    with safe_open(str(r.weights), framework="pt") as f:
        spec = ModelSpec.from_json(f.metadata()["mixnet.spec"])
        ema_w = f.get_tensor("classifier.weight")
    assert spec.class_names == tuple(f"digit{c}" for c in range(10)) and spec.architecture == "mixnet_s"
    assert spec.preprocess.img_size == 16 and spec.num_classes == 10
    assert dict(spec.config) == {"width_mult": 0.25, "head_channels": 32}  # bn_eps 1e-5 is mixnet_s's own
    # The other side of the contract: eval/predict rebuild the same model from the file alone.
    model, loaded = mixnet.load_model(r.weights)
    assert loaded == spec and model.stem.bn.eps == 1e-5 and model.pretrained_cfg["input_size"] == (3, 16, 16)
    ckpt = torch.load(r.checkpoint, weights_only=True)
    assert torch.equal(ema_w, ckpt["model_ema"]["classifier.weight"])  # the export is the EMA
    assert ModelSpec.from_dict(ckpt["spec"]) == spec and ckpt["args"]["preset"] == "short"
    # The training checkpoint is a model file too (its EMA weights).
    from_ckpt, ckpt_spec = mixnet.load_model(r.checkpoint)
    assert ckpt_spec == spec and torch.equal(from_ckpt.classifier.weight, ema_w)
    assert len((r.run_dir / "metrics.csv").read_text().splitlines()) == 3
    row = r.final
    assert 0 <= row["val_top1"] <= 100 and row["images_per_s"] > 0 and "ema_val_top1" in row
    assert Image.open(r.run_dir / "loss.png").size[0] > 100


def test_eval_ema_only_evaluates_the_raw_weights_after_the_last_epoch_only(digits5, tmp_path):
    r = loop.train(_config(digits5, tmp_path / "run", epochs=3, preset="short", eval_ema_only=True))
    assert [("val_top1" in h, "ema_val_top1" in h) for h in r.history] == [(False, True), (False, True), (True, True)]
    assert 0 <= r.final["val_top1"] <= 100
    csv = (r.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv) == 4 and "ema_val_top1" in csv[0]


def test_wrong_checkpoint_for_resume_or_pretrained_names_the_mismatch(digits10, digits5, tmp_path):
    r = loop.train(_config(digits10, tmp_path / "run", epochs=1))
    with pytest.raises(CheckpointError, match="from a mixnet_s run, but this run builds mixnet_m"):
        loop.train(_config(digits10, tmp_path / "a", epochs=2, resume=str(r.checkpoint), model="mixnet_m"))
    with pytest.raises(CheckpointError, match="trained with opt 'rmsproptf', but this run uses 'adamw'"):
        loop.train(_config(digits10, tmp_path / "o", epochs=2, resume=str(r.checkpoint), opt="adamw"))
    config_before = (r.run_dir / "config.json").read_bytes()
    with pytest.raises(CheckpointError, match="trained with seeded_augmentation=False, but this run uses True"):
        loop.train(_config(digits10, r.run_dir, epochs=2, resume=str(r.checkpoint), seeded_augmentation=True))
    assert (r.run_dir / "config.json").read_bytes() == config_before  # a refused resume keeps the record
    with pytest.raises(CheckpointError, match="has 10 classes.*data has 5 classes"):
        loop.train(_config(digits5, tmp_path / "b", epochs=2, resume=str(r.checkpoint)))
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch: stages.1.0.project_conv.convs.0.weight: checkpoint \(4, 24, 1, 1\) vs model \(8",
    ):
        loop.train(_config(digits10, tmp_path / "c", epochs=2, resume=str(r.checkpoint), width_mult=0.5))
    # Fine-tuning from a file of another class count: the classifier starts afresh, with a warning.
    with pytest.warns(UserWarning, match="10-class classifier; this model's 5-class classifier is freshly init"):
        tuned = loop.train(_config(digits5, tmp_path / "d", epochs=1, weights=str(r.weights)))
    assert mixnet.load_model(tuned.weights)[1].num_classes == 5
    # The CLI turns it into a one-line error with exit code 2.
    assert main(["train", "--resume", str(r.checkpoint), "--model", "mixnet_m", "--epochs", "2"]) == 2


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(digits10, tmp_path, monkeypatch, capsys):
    r = loop.train(_config(digits10, tmp_path / "run", epochs=1))
    good = _sha(r.checkpoint)
    real_ce = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy", lambda *a, **k: real_ce(*a, **k) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite training loss.*epoch 2, step 1"):
        loop.train(_config(digits10, tmp_path / "run", epochs=2, resume=str(r.checkpoint)))
    assert _sha(r.checkpoint) == good and torch.load(r.checkpoint, weights_only=True)["epoch"] == 1
    # Through the CLI: the resume takes the checkpoint's options; a clear message, exit code 2.
    assert main(["train", "--resume", str(r.checkpoint), "--epochs", "2"]) == 2
    assert "non-finite training loss" in capsys.readouterr().err
    assert _sha(r.checkpoint) == good


def test_disk_full_during_training_keeps_the_previous_checkpoint(digits10, tmp_path, monkeypatch, capsys):
    import errno

    from mixnet.train import checkpoint as ckpt_mod

    real_save, calls = ckpt_mod.torch.save, []

    def save(obj, f, *a, **k):
        calls.append(1)
        if len(calls) == 2:  # epoch 2's checkpoint: the disk fills up half-way
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ckpt_mod.torch, "save", save)
    with pytest.raises(OSError, match="out of disk space"):
        loop.train(_config(digits10, tmp_path / "run", epochs=2))
    # The same through the command line: one line that says what happened, exit status 2, no traceback.
    calls.clear()
    args = ["train", "--preset", "paper", "--data", str(digits10), "--out", str(tmp_path / "cli"), "--epochs", "2"]
    args += ["--batch-size", "16", "--workers", "0", "--threads", "1", "--model", "mixnet_s", "--width-mult", "0.25"]
    args += ["--head-channels", "32", "--img-size", "16", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "out of disk space" in err and "previous last.pth is intact" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    monkeypatch.undo()
    assert torch.load(tmp_path / "run/last.pth", weights_only=True)["epoch"] == 1
    assert not [p for p in (tmp_path / "run").iterdir() if ".tmp" in p.name]


@pytest.mark.slow
def test_torchrun_two_processes_gloo(digits10, tmp_path):
    exe = shutil.which("mixnet", path=str(Path(sys.executable).parent))
    assert exe, "the mixnet console script is not installed next to this Python"
    data = shutil.copytree(digits10, tmp_path / "data")
    (data / "train" / "digit3" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        exe,
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--workers",
        "0",
        "--model",
        "mixnet_s",
        "--width-mult",
        "0.25",
        "--head-channels",
        "32",
        "--img-size",
        "16",
        "--device",
        "cpu",
    ]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("epoch 1/1") == 1  # only rank 0 logs
    # Output to a pipe, no --progress/--no-progress: no bar redraws, a line per epoch.
    assert "\r" not in proc.stderr and "it/s" not in proc.stderr
    # Rank 0 alone verified the files and named the bad one; rank 1 was told to skip it.
    assert proc.stderr.count("skipped 1 of 161 file(s)") == 1 and "broken.png" in proc.stderr
    assert sorted(p.name for p in out.glob("*.pth")) == ["last.pth"] and (out / "model.safetensors").is_file()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # 160 images, 2 processes x 16 per step: 5 steps each (alone it would be 10).
    assert len(rows) == 1 and rows[0]["steps"] == 5
    ckpt = torch.load(out / "last.pth", weights_only=True)
    assert ckpt["epoch"] == 1
    # Each process evaluated half of the 40 val images; the summed result is one process's on all 40.
    from mixnet.data import build_datasets, eval_transform
    from mixnet.eval.evaluate import evaluate

    config = TrainConfig.from_dict(ckpt["args"])
    tf = eval_transform(config.img_size, crop_pct=config.crop_pct, interpolation=config.interpolation)
    with pytest.warns(UserWarning, match="broken.png"):
        _, val_ds, _ = build_datasets(config.data, train_tf=None, val_tf=tf)
    loader = torch.utils.data.DataLoader(val_ds, batch_size=2 * config.batch_size)
    for prefix, key in (("", "model"), ("ema_", "model_ema")):
        model = build_model(config, 10)
        model.load_state_dict(ckpt[key])
        m = evaluate(model, loader, channels_last=config.channels_last, progress=False)
        assert m["n"] == 40
        assert rows[0][f"{prefix}val_top1"] == m["top1"] and rows[0][f"{prefix}val_loss"] == pytest.approx(m["loss"])


def test_accumulation_bf16_mixing_and_augmentation_options_train(digits10, tmp_path):
    c = _config(
        digits10,
        tmp_path / "run",
        epochs=1,
        preset="short",
        accum_steps=2,
        amp="bf16",
        grad_clip=1.0,
        mixup=0.2,
        cutmix=1.0,
        auto_augment="rand-m9-n2",
        drop_path_rate=0.1,
        sched="step",
        ema_decay=0.0,
        # bf16 autocast + channels_last on the CPU gave NaN/inf gradients in this 16 px net (1x1 maps) in
        # most runs (fp32 channels_last and bf16 NCHW did not); the gradient check stops such runs.
        channels_last=False,
    )
    r = loop.train(c)
    row = r.final
    assert row["steps"] == 5  # 160 images / 16 per micro-batch / 2 micro-batches per step
    assert np.isfinite(row["train_loss"]) and "ema_val_top1" not in row
    assert torch.load(r.checkpoint, weights_only=True)["model_ema"] is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        loop.train(c.replace(amp="fp16", device="cpu"))


def test_demo_pipeline_on_a_small_folder(digits3, tmp_path, capsys):
    # The main job end to end (train, evaluate the export, predict PNGs, report) on a folder smaller than
    # one default batch: the batch is fitted to it, with a warning.
    args = ["demo", "--out", str(tmp_path / "demo"), "--epochs", "1", "--data", str(digits3), "--workers", "0"]
    assert main([*args, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert str(tmp_path / "demo" / "report.md") in out
    assert "warning: 60 training images are fewer than batch 64 x 1 accumulation x 1 process(es): batch size 60" in err
    assert json.loads((tmp_path / "demo" / "config.json").read_text())["batch_size"] == 60
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "held-out top-1 (exported EMA weights)" in report and "![loss](loss.png)" in report
    assert report.count("| samples/val") == 8
    assert f"for 1 epoch on `{digits3}` (60 train / 24 held out)" in report
    # Each row pairs the image's true class name with the predicted one, both from the folder's names.
    from mixnet.data import build_datasets

    _, val_ds, names = build_datasets(digits3, train_tf=None, val_tf=None)
    rows = re.findall(r"\| samples/val(\d{4})\.png \| (\S+) \| (\S+) \| ([\d.]+) \|", report)
    assert len(rows) == 8
    for index, truth, predicted, _ in rows:
        assert truth == names[val_ds.targets[int(index)]] and predicted in names
    assert len(list((tmp_path / "demo" / "samples").glob("*.png"))) == 8


def _tiny_cli(data: Path, out: Path | None) -> list[str]:
    args = ["train", "--data", str(data), "--epochs", "1", "--img-size", "16", "--workers", "0", "--threads", "1"]
    args += ["--width-mult", "0.25", "--head-channels", "32", "--no-progress"]
    return args + (["--out", str(out)] if out else [])


def test_a_small_folder_trains_with_a_batch_fitted_to_it(digits3, tmp_path, capsys):
    assert main(_tiny_cli(digits3, tmp_path / "run")) == 0
    err = capsys.readouterr().err
    assert "60 training images are fewer than batch 64 x 1 accumulation x 1 process(es): batch size 60" in err
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert rows[0]["steps"] == 1
    assert json.loads((tmp_path / "run/config.json").read_text())["batch_size"] == 60  # what was trained
    # Too few for even a batch of two: a clear refusal.
    from mixnet.train.loaders import fit_batch

    with pytest.raises(ValueError, match="3 training images are too few for a batch of 2 x 2 accumulation"):
        fit_batch(64, 2, 3, 1)
    assert fit_batch(16, 2, 60, 2) == 15 and fit_batch(8, 2, 60, 2) == 8


def test_a_refused_run_leaves_no_folder(digits3, tmp_path, monkeypatch, capsys):
    """Every input is checked before the run folder is made: data, options, weights, architecture, checkpoint."""
    monkeypatch.chdir(tmp_path)  # where runs/<model>-<time> would go
    notes = tmp_path / "notes.txt"
    notes.write_text("not weights\n")
    refused = {
        "missing data": ["--data", str(tmp_path / "missing")],
        "no train/ folder": ["--data", str(digits3 / "train")],
        "a text file as weights": ["--weights", str(notes)],
        "a missing architecture file": ["--arch", str(tmp_path / "missing.json")],
        "a missing checkpoint": ["--resume", str(tmp_path / "missing.pth")],
        "fp16 on the CPU": ["--amp", "fp16", "--device", "cpu"],
    }
    for why, extra in refused.items():
        assert main([*_tiny_cli(digits3, tmp_path / "run"), *extra]) == 2, why
        assert not (tmp_path / "run").exists(), why
        assert main([*_tiny_cli(digits3, None), *extra]) == 2, why
        assert not (tmp_path / "runs").exists(), why
    capsys.readouterr()
    assert main(["demo", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "demo")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "demo").exists()


def test_train_on_the_builtin_digits_takes_their_own_defaults(tmp_path, capsys):
    from mixnet.train.demo import demo_config

    def dry(*args: str) -> dict:
        assert main(["train", "--dry-run", *args]) == 0
        return json.loads(capsys.readouterr().out)

    demo = demo_config(tmp_path)  # the demo's recipe on the digits
    keys = ("img_size", "hflip", "crop_scale")
    for args in ([], ["--data", "digits"]):
        got = dry(*args)
        assert [got[k] for k in keys] == [demo.img_size, demo.hflip, list(demo.crop_scale)]
    mine = dry("--img-size", "48", "--hflip", "0.25")  # what the user sets wins
    assert (mine["img_size"], mine["hflip"], mine["crop_scale"]) == (48, 0.25, list(demo.crop_scale))
    folder = dry("--data", str(tmp_path))  # an image folder: the preset's values
    short = TrainConfig.from_preset("short")
    assert (folder["img_size"], folder["hflip"]) == (short.img_size, short.hflip) and short.hflip > 0
    assert dry("--data", "cluttered-digits")["hflip"] == 0.0


def test_resuming_a_finished_run_says_it_is_complete(digits3, tmp_path, capsys):
    assert main(_tiny_cli(digits3, tmp_path / "run")) == 0
    before = _sha(tmp_path / "run/last.pth")
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run/last.pth"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'run/last.pth'} is already complete at epoch 1/1: nothing to train" in out
    assert "epoch 1/1 |" not in out  # no epoch was trained
    assert _sha(tmp_path / "run/last.pth") == before


def test_only_rank_0_decodes_the_images(digits10, tmp_path, monkeypatch):
    from mixnet import data
    from mixnet.train import loaders
    from mixnet.train.distributed import DistInfo

    folder = shutil.copytree(digits10, tmp_path / "data")
    bad = folder / "val" / "digit1" / "broken.png"
    bad.write_bytes(b"not a png")
    config = _config(folder, tmp_path / "run", epochs=1)
    sent = []
    monkeypatch.setattr(loaders, "broadcast_object", lambda obj, info: sent.append(obj) or obj)
    with pytest.warns(UserWarning, match="broken.png"):
        train_ds, val_ds, _ = build_data(config, DistInfo(rank=0, world_size=2), None, None)
    assert sent == [("ok", {str(bad): val_ds.skipped[0][1]})]

    # Rank 1 receives that verdict and opens no file.
    monkeypatch.setattr(loaders, "broadcast_object", lambda obj, info: sent[0])
    monkeypatch.setattr(data, "check_image", lambda path: pytest.fail(f"rank 1 decoded {path}"))
    train1, val1, _ = build_data(config, DistInfo(rank=1, world_size=2), None, None)
    assert val1.samples == val_ds.samples and train1.samples == train_ds.samples and len(val1) == 40

    # Rank 0's error reaches the other ranks instead of leaving them waiting.
    sent.clear()
    monkeypatch.setattr(loaders, "broadcast_object", lambda obj, info: sent.append(obj) or obj)
    missing = config.replace(data=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        build_data(missing, DistInfo(rank=0, world_size=2), None, None)
    assert sent[0][:2] == ("error", "FileNotFoundError")
    monkeypatch.setattr(loaders, "broadcast_object", lambda obj, info: sent[0])
    with pytest.raises(FileNotFoundError, match="rank 0 could not build the data set: data folder"):
        build_data(missing, DistInfo(rank=1, world_size=2), None, None)


@pytest.mark.slow
def test_compiled_training_saves_plain_weights(digits5, tmp_path):
    """--compile trains through torch.compile; the checkpoint and export hold the plain model's keys.

    Compiled with dynamo's ``aot_eager`` backend: the same graph capture and wrapping as inductor without
    two minutes of C++ compilation (inductor's numerics are tested in test_optimize.py).
    """
    # In a fresh process: dynamo's state outlives a test, and a long-lived test worker that has run
    # everything else is not where a compiled training should start.
    code = (
        "import functools, json, sys\n"
        "from pathlib import Path\n"
        "import torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "torch.compile = functools.partial(torch.compile, backend='aot_eager')\n"
        "import test_train_run as t\n"
        "from mixnet.train import loop\n"
        f"r = loop.train(t._config(Path({str(digits5)!r}), Path({str(tmp_path / 'run')!r}), epochs=1, "
        "preset='short', compile=True))\n"
        "print(json.dumps({'loss': r.final['train_loss'], 'checkpoint': str(r.checkpoint), "
        "'weights': str(r.weights)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert np.isfinite(r["loss"])
    keys = list(torch.load(r["checkpoint"], weights_only=True)["model"])
    assert keys and not any(k.startswith(("_orig_mod.", "module.")) for k in keys)
    assert main(["eval", "--weights", r["weights"], "--data", str(digits5), "--json"]) == 0

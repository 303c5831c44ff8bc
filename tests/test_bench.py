"""``mixnet bench`` end to end at a tiny size: every contender runs and the outputs are written."""

import csv

import pytest

from mixnet.bench.suite import INFERENCE_CONTENDERS, TRAINING_CONTENDERS, read_rows
from mixnet.cli import main


@pytest.mark.slow
def test_bench_cli_writes_csv_markdown_and_plot(tmp_path, capsys):
    # Two batch sizes: the second reuses the exports of the first, which must hold the same weights.
    args = ["bench", "--model", "mixnet_s", "--batch-size", "1,2", "--img-size", "32", "--rounds", "1"]
    args += ["--train", "--train-settings", "2x32", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    again = read_rows(tmp_path / "bench.csv")  # the CSV reads back into rows that redraw the same table
    assert [r.images_per_s for r in again] == [float(r["images_per_s"]) for r in rows]
    inference = {r["contender"] for r in rows if r["kind"] == "inference"}
    assert inference == set(INFERENCE_CONTENDERS)
    assert {r["contender"] for r in rows if r["kind"] == "training"} == set(TRAINING_CONTENDERS)
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    diffs = {r["contender"]: float(r["max_abs_diff"]) for r in rows if r["kind"] == "inference"}
    assert max(d for c, d in diffs.items() if "int8" not in c) <= 1e-3  # all compute the same logits
    md = (tmp_path / "bench.md").read_text()
    assert "threads" in md and "mixnet bench --model mixnet_s" in md and "| mixnet_s | 1 | 32 | ours ORT int8 |" in md
    assert "Intel" in md or "cores" in md
    assert (tmp_path / "bench.png").stat().st_size > 10_000


def test_disagreeing_contenders_stop_the_benchmark():

    import torch

    from mixnet.bench.suite import check_agreement

    same = {"a": lambda: torch.ones(2), "b": lambda: torch.ones(2) + 1e-5, "c int8": lambda: torch.zeros(2)}
    assert check_agreement(same, "a")["c int8"] == 1.0
    with pytest.raises(RuntimeError, match="'b'"):
        check_agreement({"a": lambda: torch.ones(2), "b": lambda: torch.zeros(2)}, "a")


def test_bad_bench_arguments_are_named(capsys):

    for args in (["--threads", "0"], ["--train-settings", "2x32x4"], ["--batch-size", "1,x"]):
        with pytest.raises(SystemExit):
            main(["bench", *args])
        assert "error" in capsys.readouterr().err


def test_peer_macs_count_is_the_models_own():
    """The one MAC counter for every network agrees with our analytic count of MixNet-S's convs and linear."""
    import timm

    import mixnet
    from mixnet.bench.peers import count_macs

    counted = count_macs(timm.create_model("mixnet_s").eval(), 224)
    assert counted == pytest.approx(mixnet.complexity("mixnet_s", 224).conv_linear_macs / 1e6, rel=2e-3)
    assert count_macs(timm.create_model("mobilenetv2_100").eval(), 224) == pytest.approx(300.8, rel=0.01)


@pytest.mark.slow
def test_bench_peers_every_network_in_every_runtime(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from mixnet.bench.peers import GEMM, PUBLISHED_TOP1, RUNTIMES, read_rows

    # A separate process: OpenVINO's native runtime stays out of the test worker.
    exe = shutil.which("mixnet", path=str(Path(sys.executable).parent))
    args = [exe, "bench", "--peers", "--peer-models", "mobilenetv2_100", "--batch-size", "1", "--img-size", "32"]
    args += ["--rounds", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(tmp_path / "peers.csv")
    got = {(r.impl, r.model, r.runtime) for r in rows}
    for impl, model in (("ours", "mixnet_s"), ("timm", "mixnet_s"), ("timm", "mobilenetv2_100")):
        assert {(impl, model, rt) for rt in RUNTIMES} <= got
    assert all(r.images_per_s > 0 and 0 < r.pct_of_peak and r.peak_gflops > 0 for r in rows)
    assert all(r.max_abs_diff <= 1e-3 for r in rows)  # every runtime computes its network's logits
    assert {r.top1 for r in rows if r.model == "mobilenetv2_100"} == {PUBLISHED_TOP1["mobilenetv2_100"][0]}
    md = (tmp_path / "peers.md").read_text()
    assert "timm's mixnet_s in its best runtime" in md and "MobileNetV3" not in md.split("### The ratios")[1]
    assert GEMM not in {r.label for r in rows} and (tmp_path / "peers.png").stat().st_size > 10_000


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu_at_a_tiny_size(tmp_path, capsys):
    """The prepared GPU measurement: its whole path (bf16 autocast, both kinds, the outputs) on the CPU."""
    import importlib.util
    from pathlib import Path

    import torch

    spec = importlib.util.spec_from_file_location("gpu_bench", Path(__file__).parents[1] / "benchmarks" / "gpu.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    if not torch.cuda.is_available():
        assert gpu.main(["--out", str(tmp_path / "none")]) == 2
        assert "no CUDA GPU here" in capsys.readouterr().err
    small = ["--train-batch", "2", "--train-size", "32", "--infer-batch", "2", "--infer-size", "32", "--rounds", "1"]
    assert gpu.main(["--device", "cpu", "--models", "mixnet_s", *small, "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "gpu.csv")))
    assert {(r["kind"], r["contender"]) for r in rows} == {
        ("training", "timm"),
        ("training", "timm (A/A)"),
        ("training", "ours"),
        ("training", "ours fused"),
        ("inference", "timm"),
        ("inference", "ours"),
        ("inference", "ours optimized"),
    }
    assert all(float(r["images_per_s"]) > 0 and r["amp"] == "bf16" for r in rows)
    assert "| mixnet_s | inference | ours optimized |" in (tmp_path / "gpu.md").read_text()

"""``mixnet bench`` end to end at a tiny size: every contender runs and the outputs are written."""

import csv

from mixnet.bench import INFERENCE_CONTENDERS
from mixnet.cli import main


def test_bench_cli_writes_csv_markdown_and_plot(tmp_path, capsys):
    args = ["bench", "--models", "mixnet_s", "--batches", "1", "--img-size", "32", "--rounds", "1"]
    args += ["--train", "--train-settings", "2x32", "--out", str(tmp_path)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    inference = {r["contender"] for r in rows if r["kind"] == "inference"}
    assert inference == set(INFERENCE_CONTENDERS)
    assert {r["contender"] for r in rows if r["kind"] == "training"} == {"timm", "timm (A/A)", "ours"}
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    base = [r for r in rows if r["contender"] == "timm eager"][0]
    assert float(base["vs_timm_eager"]) == 1.0
    md = (tmp_path / "bench.md").read_text()
    assert "threads" in md and "mixnet bench --models mixnet_s" in md and "| mixnet_s | 1 | 32 | ours ORT int8 |" in md
    assert (tmp_path / "bench.png").stat().st_size > 10_000

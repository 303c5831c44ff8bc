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

"""Successive halving: the search strategy without a supernet."""

import json
from pathlib import Path

import pytest
from conftest import write_digit_folder

import mixnet
from mixnet.cli import main
from mixnet.search.config import SearchConfig
from mixnet.search.evolve import arch_key
from mixnet.search.halving import halving_seed, rung_sizes
from mixnet.search.latency import LatencyTable, choice_key, machine
from mixnet.search.space import SearchSpace


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A 4-class ImageFolder of real digits (16 train, 4 val per class)."""
    return write_digit_folder(tmp_path_factory.mktemp("digits4"), 4, (16, 4))


def test_rungs_shrink_by_eta_to_one_survivor():
    assert rung_sizes(16, 2) == [16, 8, 4, 2]
    assert rung_sizes(10, 3) == [10, 4, 2]
    assert rung_sizes(4, 4) == [4]


def test_halving_options_are_checked():
    with pytest.raises(ValueError, match="needs strategy supernet"):
        SearchConfig(strategy="halving", check_ranking=16)
    with pytest.raises(ValueError, match="halving_eta >= 2"):
        SearchConfig(strategy="halving", halving_eta=1)
    with pytest.raises(ValueError, match="strategy must be one of"):
        SearchConfig(strategy="bogus")
    assert halving_seed(SearchConfig(seeds=(0, 1, 2))) not in (0, 1, 2)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_a_whole_halving_search_runs_reports_and_resumes(tmp_path, folder):
    """Rung by rung the best half goes on, trained longer; the winner is retrained beside the first rung's
    median net, its MACs pick and the scaled skeleton, and a second call trains nothing."""
    from mixnet.search.run import run_search

    space = SearchSpace()
    entries = [
        {choice_key(c): 0.1 * sum(c.kernels) / 3 + 0.05 * c.expand for c in space.choices()} for _ in space.slots()
    ]
    table = LatencyTable("mixnet_s", 16, 1, 1, "eager", True, machine(), 1.0, entries, num_classes=4)
    table.save(tmp_path / "table.json")
    cfg = SearchConfig(
        strategy="halving",
        data=str(folder),
        img_size=16,
        table=str(tmp_path / "table.json"),
        target=12.0,
        halving_nets=4,
        halving_epochs=1,
        retrain_epochs=2,  # two points: a slope for the convergence section
        seeds=(0,),
        latency_check=0,  # the hand-made table predicts no real time
    )
    out = tmp_path / "search"
    lines: list[str] = []
    result = run_search(cfg, out, log=lines.append)
    assert result.random_best is None and not (out / "supernet.pth").exists()
    rows = _rows(out / "halving.jsonl")
    assert [(r["rung"], r["epochs"]) for r in rows] == [(0, 1)] * 4 + [(1, 2)] * 2
    assert all(r["status"] == "ok" and r["latency"] <= 12.0 for r in rows)  # feasible nets only
    first = sorted((r for r in rows if r["rung"] == 0), key=lambda r: (-r["top1"], r["latency"], r["net"]))
    assert {r["net"] for r in rows if r["rung"] == 1} == {r["net"] for r in first[:2]}
    second = sorted((r for r in rows if r["rung"] == 1), key=lambda r: (-r["top1"], r["latency"], r["net"]))
    summary = json.loads((out / "halving.json").read_text())
    assert summary["found"]["net"] == second[0]["net"] and result.found["arch"] == second[0]["arch"]
    assert summary["found"]["net"] not in (summary["random_median"], summary["macs_pick"])  # never against itself
    assert summary["seed"] == halving_seed(cfg) and summary["epochs_trained"] == 4 * 1 + 2 * 2
    found = mixnet.create_model(str(out / "found.json"), num_classes=4)
    assert arch_key(space.of_config(found.config)) == second[0]["arch"]
    width = json.loads((out / "matched_width.json").read_text())["width"]
    retrained = {r["net"] for r in _rows(out / "retrain.jsonl")}
    same = summary["macs_pick"] == summary["random_median"]  # then one net, trained once, stands for both
    assert retrained == {"found", f"mixnet_s_w{width}", "random_median"} | (set() if same else {"macs_pick"})
    report = (out / "report.md").read_text()
    assert "## The rungs" in report and "successive halving" in report and "random_best" not in report
    assert "one seed: no significance can be claimed" in report.lower()
    assert f"`{tmp_path / 'table.json'}` (the latency table given)" in report
    assert "## Convergence" in report and "| found |" in report.split("## Convergence")[1]
    assert (out / "learning_curves.png").stat().st_size > 0
    # The report of a search whose MACs pick is its median net: one row, one comparison.
    summary_text = (out / "halving.json").read_text()
    (out / "halving.json").write_text(json.dumps({**summary, "macs_pick": summary["random_median"]}))
    from mixnet.search.report import write_search_report

    merged = write_search_report(out).read_text()
    assert "| macs_pick |" not in merged and "found - macs_pick" not in merged
    assert f"The MACs pick is the median net itself ({summary['random_median']})" in merged
    (out / "halving.json").write_text(summary_text)
    write_search_report(out)
    # `report --retime` times the compared nets again (a fresh process) and rewrites the report from them.
    stale = dict.fromkeys(json.loads((out / "final_latency.json").read_text()), 99.0)
    (out / "final_latency.json").write_text(json.dumps(stale))
    assert main(["search", "report", str(out), "--retime"]) == 0
    timed = json.loads((out / "final_latency.json").read_text())
    assert set(timed) == retrained and all(0 < v < 99.0 for v in timed.values())
    assert "| 99.000 |" not in (out / "report.md").read_text()

    before = (out / "halving.jsonl").read_text(), (out / "retrain.jsonl").read_text()
    again = run_search(cfg, out, log=lines.append)
    assert again.found == result.found
    assert ((out / "halving.jsonl").read_text(), (out / "retrain.jsonl").read_text()) == before  # nothing retrained

    # Two at a time, in worker processes: the same runs with the same numbers (seeded, one thread each here).
    together = run_search(SearchConfig(**{**cfg.__dict__, "jobs": 2, "threads": 1}), tmp_path / "jobs", log=print)
    alone = run_search(SearchConfig(**{**cfg.__dict__, "threads": 1}), tmp_path / "in_turn", log=print)
    assert together.found == alone.found
    for name in ("halving.jsonl", "retrain.jsonl"):
        # The scaled skeleton's width comes from a timing, which may differ between the two searches.
        a, b = (
            [r for r in _rows(tmp_path / d / name) if not r["net"].startswith("mixnet_s_w")]
            for d in ("jobs", "in_turn")
        )
        assert {r["run"]: r["top1"] for r in a} == {r["run"]: r["top1"] for r in b} and len(a) == len(b)

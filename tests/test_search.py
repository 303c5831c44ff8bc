"""``mixnet search``: the space, architecture files, the latency table and predictor, the supernet's weight
sharing, the objective, evolution vs random search, resume."""

import csv
import json
import math
import random
import statistics
from pathlib import Path

import pytest
import torch
from conftest import randomize_bn, write_digit_folder

import mixnet
from mixnet.models.arch import expand_rows
from mixnet.models.archfile import load_arch, save_arch
from mixnet.search.evolve import Objective, arch_key, check_target, evolution_search, random_search
from mixnet.search.latency import LatencyTable, choice_key, load_table, machine, measure_table
from mixnet.search.predictor import predictor_error
from mixnet.search.space import SKIP, SearchSpace
from mixnet.search.supernet import SuperNet

TINY = mixnet.MixNetConfig.from_strings(
    [["r1_k3_a1_p1_s11_e1_i8_o8"], ["r1_k3_a1_p1_s22_e3_i8_o16", "r1_k3_a1_p1_s11_e3_i16_o16"]],
    stem_channels=8,
    head_channels=32,
)


def tiny_space(**kw) -> SearchSpace:
    return SearchSpace("tiny", skeleton_config=TINY, **kw)


SMALL = dict(kernels=((3,), (3, 5), (3, 5, 7)), expansions=(1, 3), se_ratios=(None, 0.5), groups=(1, 2))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A 4-class ImageFolder of real digits (16 train, 4 val per class)."""
    return write_digit_folder(tmp_path_factory.mktemp("digits4"), 4, (16, 4))


def test_space_round_trips_and_contains_mixnet_s():
    space = SearchSpace()
    assert len(space.slots()) == 16 and len(space.choices()) == 300
    arch = space.sample(random.Random(0))
    assert space.of_config(space.config(arch)) == arch
    mixnet_s = space.of_config(mixnet.create_model("mixnet_s").config)

    def blocks(config):
        return [b for stage in config.scaled_stages() for b in expand_rows(stage)]

    assert blocks(space.config(mixnet_s)) == blocks(space.base)
    with pytest.raises(ValueError, match="not a choice of this space"):
        space.of_config(
            mixnet.create_model("mixnet_m")
            .config.replace(stages=space.base.stages, stem_channels=16)
            .with_kernels("k13")
        )


def test_elastic_depth_leaves_out_blocks():
    """Elastic depth: any block but a stage's first may be left out; the net has the blocks kept, in order."""
    space = SearchSpace(elastic_depth=True)
    per_stage = [len(s) for s in space.stage_slots()]
    firsts = {sum(per_stage[:i]) for i in range(len(per_stage))}
    assert [i for i, ok in enumerate(space.skippable()) if not ok] == sorted(firsts)
    counts = [sum(300**d for d in range(1, n + 1)) for n in per_stage]  # a stage of n keeps 1..n blocks
    assert space.size() == math.prod(counts) and space.size() > SearchSpace().size()
    assert SKIP not in space.choices() and SearchSpace().size() == 300**16
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(20)]
    # Depths are drawn per stage: stage 2 (positions 3-6) takes every depth 1..4 over 200 samples.
    depths = {sum(not c.is_skip for c in space.sample(rng)[3:7]) for _ in range(200)}
    assert depths == {1, 2, 3, 4}
    mutated = [space.redraw_depths(a, rng, 1.0) for a in archs]
    assert all(space.canonical(m) == m for m in mutated) and mutated != archs
    for arch in archs:
        config = space.config(arch)
        assert len([b for st in config.scaled_stages() for b in expand_rows(st)]) == sum(not c.is_skip for c in arch)
        assert space.of_config(config) == arch  # samples are canonical: left-out blocks last in their stage
    late = list(archs[0])
    late[4], late[5] = SKIP, space.choices()[7]  # stage 2 (positions 3-6): its second left out, third kept
    late = tuple(late)
    canon = space.canonical(late)
    assert canon[4] == space.choices()[7] and canon != late and space.config(late) == space.config(canon)
    with pytest.raises(ValueError, match="must keep"):
        space.config((SKIP,) + archs[0][1:])
    with pytest.raises(ValueError, match="a stage of 1 blocks"):
        SearchSpace().of_config(
            space.config(tuple(SKIP if ok else c for c, ok in zip(archs[0], space.skippable(), strict=True)))
        )
    table = measure_table(space, runtime="macs", img_size=32, num_classes=4)
    from mixnet.models.complexity import config_complexity

    for arch in archs[:5]:
        counted = config_complexity(space.config(arch), 32, num_classes=4).macs / 1e6
        assert table.predict(arch) == pytest.approx(counted, rel=1e-6)
    assert table.elastic_depth and all(
        ("skip" in row) == ok for row, ok in zip(table.entries, space.skippable(), strict=True)
    )


def test_other_skeletons():
    wide = SearchSpace("mixnet_l")  # width 1.3: the stem and the slots are scaled alike
    net = mixnet.MixNet(wide.config(wide.sample(random.Random(0))), num_classes=3).eval()
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    for name in ("tf_mixnet_s", "mobilenet_v1"):
        with pytest.raises(ValueError, match=f"{name} cannot be a search skeleton"):
            SearchSpace(name).check_skeleton()


def test_arch_files_are_models(tmp_path):
    space = SearchSpace()
    config = space.config(space.sample(random.Random(1)))
    path = save_arch(tmp_path / "found.json", config, meta={"latency": 1.5})
    name, loaded, meta = load_arch(path)
    assert loaded == config and meta == {"latency": 1.5} and name == "found"
    model = mixnet.create_model(str(path), num_classes=7)
    assert model.config == config and model.pretrained_cfg["architecture"] is None
    randomize_bn(model).eval()
    mixnet.save_model(tmp_path / "m.safetensors", model)
    again, spec = mixnet.load_model(tmp_path / "m.safetensors")
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert spec.architecture is None and again.config == config
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a mixnet architecture file"):
        mixnet.create_model(str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="cannot read architecture file"):
        mixnet.create_model(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="no published weights"):
        mixnet.create_model(str(path), pretrained=True)


@pytest.mark.parametrize(
    "space",
    [tiny_space(), SearchSpace(), SearchSpace(elastic_depth=True)],
    ids=["tiny", "mixnet_s", "mixnet_s-elastic"],
)
def test_supernet_paths_equal_the_extracted_standalone_nets(space):
    """Sub-kernel and channel sharing: a path's output is the standalone net's with the weights copied out."""
    torch.manual_seed(0)
    supernet = randomize_bn(SuperNet(space, 5)).eval()
    torch.nn.init.normal_(supernet.classifier.weight)  # zero at init: logits would not tell paths apart
    rng = random.Random(0)
    x = torch.randn(2, 3, 37, 45)
    archs = [space.sample(rng) for _ in range(3 if space.skeleton == "tiny" else 1)]
    if space.elastic_depth:  # every stage at its shallowest, and stage 2 (positions 3-6) at depth 2 of 4
        shallow = tuple(SKIP if ok else c for c, ok in zip(archs[0], space.skippable(), strict=True))
        partial = list(space.canonical(archs[0]))
        partial[3:7] = [space.choices()[5], space.choices()[250], SKIP, SKIP]
        archs = [shallow, tuple(partial)]
    for arch in archs:
        net = supernet.extract(arch).eval()
        assert isinstance(net, mixnet.MixNet) and net.config == space.config(arch).replace(bn_eps=1e-5)
        with torch.no_grad():
            assert (supernet(x, arch) - net(x)).abs().max().item() <= 1e-5


def test_expansion_1_paths_train_weights_of_their_own():
    """An expansion-1 path trains the block's own depthwise/SE/projection weights, never the expanded paths'."""
    space = tiny_space()
    supernet = SuperNet(space, 5).train()
    torch.nn.init.normal_(supernet.classifier.weight)
    e1 = next(c for c in space.choices() if c.expand == 1 and c.se)
    supernet(torch.randn(4, 3, 16, 16), (e1,) * 3).sum().backward()
    for block in supernet.blocks:
        assert block.tail_e1.dw_w.grad.abs().sum() > 0 and block.tail_e1.project_w.grad.abs().sum() > 0
        assert block.tail.dw_w.grad is None and block.tail.project_w.grad is None and block.expand_w.grad is None
    # Extracting the path copies the expansion-1 weights out (the equality test covers the outputs).
    state = supernet.extract((e1,) * 3).state_dict()
    first = supernet.blocks[0]
    assert torch.equal(state["stages.0.0.project_conv.convs.0.weight"], first.tail_e1.project_w)


def test_supernet_trains_every_part_it_uses():
    space = tiny_space()
    supernet = SuperNet(space, 5).train()
    torch.nn.init.normal_(supernet.classifier.weight)  # zero at init: no gradient would reach the blocks
    arch = tuple(
        c for c in [next(c for c in space.choices() if c.se and c.expand == 6 and c.kernels == (3, 5, 7, 9, 11))] * 3
    )
    loss = supernet(torch.randn(4, 3, 16, 16), arch).sum()
    loss.backward()
    block = supernet.blocks[1]
    assert block.tail.dw_w.grad.abs().sum() > 0 and block.tail.se_reduce_w.grad.abs().sum() > 0
    assert block.tail_e1.dw_w.grad is None  # an expanded path leaves the expansion-1 weights alone
    # The corners of the 11x11 superkernel belong to no channel of the first (3x3) group.
    mid = 8 * 6
    first = block.tail.dw_w.grad[: mid // 5 + mid % 5]
    assert first[:, :, 0, 0].abs().sum() == 0 and first[:, :, 5, 5].abs().sum() > 0


def _table(space: SearchSpace, **kw) -> LatencyTable:
    return measure_table(space, img_size=16, batch=1, threads=1, rounds=1, num_classes=5, **kw)


def test_latency_table_format_prediction_and_refusal(tmp_path):
    space = tiny_space(**SMALL)
    table = _table(space)
    assert len(table.entries) == 3 and all(len(row) == len(space.choices()) for row in table.entries)
    assert table.unit == "ms" and table.runtime == "eager" and table.machine["cpu"] == machine()["cpu"]
    arch = space.sample(random.Random(0))
    assert table.predict(arch) == pytest.approx(
        table.fixed + table.scale * sum(r[choice_key(c)] for r, c in zip(table.entries, arch, strict=True))
    )
    assert table.scale > 0
    assert table.fastest() <= table.predict(arch) <= table.slowest()
    path = table.save(tmp_path / "t.json")
    same = load_table(path, expect={"threads": 1, "batch": 1, "img_size": 16})
    assert same.entries == table.entries and same.fixed == table.fixed and same.scale == table.scale
    v2 = {k: v for k, v in json.loads(path.read_text()).items() if k != "scale"} | {"version": 2}
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    assert load_table(tmp_path / "v2.json").scale == 1.0  # a table from before the fitted scale
    with pytest.raises(ValueError, match="threads 1 \\(wanted 2\\)"):
        load_table(path, expect={"threads": 2})
    d = json.loads(path.read_text())
    d["machine"]["cpu"] = "Some Other CPU"
    (tmp_path / "other.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="another machine.*Some Other CPU"):
        load_table(tmp_path / "other.json")
    with pytest.warns(UserWarning, match="off by a large factor"):
        load_table(tmp_path / "other.json", allow_mismatch=True)
    d["unit"] = "us"
    (tmp_path / "us.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="unit 'us'"):
        load_table(tmp_path / "us.json", allow_mismatch=True)
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a latency table"):
        load_table(tmp_path / "junk.json")


def test_macs_table_is_exact_and_machine_free(tmp_path):
    """The FLOPs proxy: a net's predicted MMACs equal the counted MACs of the whole net it builds."""
    from mixnet.models.complexity import config_complexity

    space = tiny_space(**SMALL)
    table = measure_table(space, runtime="macs", img_size=16, num_classes=5)
    assert table.unit == "MMAC" and not table.measured
    rng = random.Random(3)
    for arch in [space.sample(rng) for _ in range(5)]:
        counted = config_complexity(space.config(arch), 16, num_classes=5).macs / 1e6
        assert table.predict(arch) == pytest.approx(counted, rel=1e-6)
    d = json.loads(table.save(tmp_path / "macs.json").read_text())
    d["machine"]["cpu"] = "Some Other CPU"  # counts do not depend on the machine, the threads or the batch
    (tmp_path / "macs.json").write_text(json.dumps(d))
    assert load_table(tmp_path / "macs.json", expect={"threads": 4, "batch": 8, "img_size": 16}).entries
    # Another space, size or runtime is refused even when mismatches are allowed.
    for key, value, hint in (("img_size", 32, ""), ("elastic_depth", True, ""), ("runtime", "eager", "--runtime macs")):
        with pytest.raises(ValueError, match=f"is for {key} .*, not {value!r}.*{hint}"):
            load_table(tmp_path / "macs.json", expect={key: value}, allow_mismatch=True)
    d["unit"] = "ms"
    (tmp_path / "macs.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="expected 'MMAC' for runtime 'macs'"):
        load_table(tmp_path / "macs.json")
    with pytest.raises(ValueError, match="unknown latency runtime 'tflite'"):
        measure_table(space, runtime="tflite")


@pytest.mark.parametrize("runtime", ["optimized", "ort"])
def test_deployed_runtimes_are_tabled_and_checked(runtime):
    """Tables of the inference rewrite and of ONNX Runtime: every entry timed, whole nets measured alike."""
    space = tiny_space(kernels=((3,), (3, 5)), expansions=(1, 3), se_ratios=(None,), swish=(False,), groups=(1,))
    table = _table(space, runtime=runtime)
    assert table.runtime == runtime and table.unit == "ms"
    assert all(len(row) == len(space.choices()) and min(row.values()) > 0 for row in table.entries)
    result = predictor_error(table, space, n=3, seed=0, rounds=2)
    assert result["runtime"] == runtime and all(m > 0 for m in result["measured"])
    assert math.isfinite(result["mean_abs_error"])


def test_predictor_error_is_checked_in_a_fresh_process_with_extremes_and_the_target_region(monkeypatch):
    import os

    from mixnet.search import netcost
    from mixnet.search.latency import extreme

    space = tiny_space(**SMALL)
    table = _table(space)
    pids = []
    real = netcost.subprocess.run

    def recording(cmd, **kw):
        proc = real(
            [
                *cmd[:1],
                "-c",
                "import os, runpy, sys; print(os.getpid()); sys.argv = sys.argv[1:]; "
                "runpy.run_module('mixnet.search.netcost', run_name='__main__')",
                "x",
                *cmd[3:],
            ],
            **kw,
        )
        pids.append(int(proc.stdout.split()[0]))
        return proc

    monkeypatch.setattr(netcost.subprocess, "run", recording)
    target = table.predict(extreme(space, table)) * 1.2
    result = predictor_error(table, space, n=4, seed=0, rounds=2, target=target)
    assert pids and os.getpid() not in pids and result["fresh_process"]
    assert result["regions"] == ["uniform"] * 4 + ["extreme"] * 2 + ["target"] * 2
    assert len(result["measured"]) == len(result["predicted"]) == 8 and all(m > 0 for m in result["measured"])
    assert all(p <= target for p, r in zip(result["predicted"], result["regions"], strict=True) if r == "target")
    assert result["predicted"][4] == table.fastest() and result["predicted"][5] == table.slowest()
    assert set(result["by_region"]) == {"uniform", "extreme", "target"} and result["by_region"]["target"]["n"] == 2
    errors = [abs(p - m) / m for p, m in zip(result["predicted"], result["measured"], strict=True)]
    assert result["mean_abs_error"] == pytest.approx(statistics.fmean(errors))


def test_the_latency_line_is_a_least_squares_fit_over_the_range():
    import numpy as np

    from mixnet.search.latency import calibration_archs, cheap_sample, extreme, fit_line

    x, y = [1.0, 2.0, 4.0, 7.0], [2.1, 2.9, 5.2, 7.8]
    slope, intercept = np.polyfit(x, y, 1)
    assert fit_line(x, y) == (pytest.approx(slope, abs=1e-5), pytest.approx(intercept, abs=1e-5))
    assert fit_line([2.0, 2.0], [3.0, 3.5]) == (1.0, 1.25)  # no spread: scale 1, the median offset
    space = tiny_space(**SMALL)
    entries = [{choice_key(c): 0.1 + 0.01 * i + 0.05 * c.expand for i, c in enumerate(space.choices())}] * 3
    table = LatencyTable("tiny", 16, 1, 1, "eager", True, machine(), 0.5, entries)
    assert table.predict(extreme(space, table)) == table.fastest()
    assert table.predict(extreme(space, table, dearest=True)) == table.slowest()
    rng = random.Random(0)
    median = statistics.median(entries[0].values())
    assert all(entries[0][choice_key(c)] <= median for _ in range(20) for c in cheap_sample(space, table, rng))
    archs = calibration_archs(space, table, 10, seed=1)
    assert len(archs) == 10 and archs[-2:] == [extreme(space, table), extreme(space, table, dearest=True)]


def test_objective_and_unreachable_target():
    soft, hard = Objective(10.0), Objective(10.0, hard=True)
    assert soft(80.0, 10.0) == 80.0 and soft(80.0, 20.0) == pytest.approx(80.0 * 2**-0.07)
    assert soft(80.0, 5.0) > 80.0
    assert hard(80.0, 9.9) == 80.0 and hard(80.0, 10.1) == -math.inf
    table = LatencyTable("tiny", 16, 1, 1, "eager", True, machine(), 1.0, [{"a": 2.0, "b": 3.0}] * 2)
    with pytest.raises(ValueError, match="fastest reachable is 5.000 ms"):
        check_target(table, 4.0)
    check_target(table, 5.0)


def _fake(space: SearchSpace):
    """A table whose latency counts kernel sizes, and an evaluator that rewards swish (a planted optimum)."""
    entries = [
        {choice_key(c): float(sum(c.kernels)) / 10 + c.expand / 10 for c in space.choices()} for _ in space.slots()
    ]
    table = LatencyTable("tiny", 16, 1, 1, "eager", True, machine(), 0.5, entries)
    calls = []

    def evaluate(arch, method):
        calls.append(arch_key(arch))
        top1 = 50.0 + 10 * sum(c.swish for c in arch) + sum(c.se or 0 for c in arch)
        lat = table.predict(arch)
        return {"arch": arch_key(arch), "top1": top1, "latency": lat, "reward": objective(top1, lat)}

    objective = Objective(2.5, hard=True)
    return table, objective, evaluate, calls


def test_evolution_and_random_search_share_the_budget_and_the_constraint():
    space = tiny_space(**SMALL)
    table, objective, evaluate, calls = _fake(space)
    evolved = evolution_search(space, table, objective, evaluate, population=6, generations=4, seed=0)
    randoms = random_search(space, table, objective, evaluate, 24, seed=0)
    assert len(evolved) == len(randoms) == 24
    assert len({r["arch"] for r in evolved}) == 24 and len({r["arch"] for r in randoms}) == 24
    assert all(r["latency"] <= 2.5 for r in evolved + randoms)
    # On a planted objective evolution finds at least what random sampling finds.
    assert max(r["reward"] for r in evolved) >= max(r["reward"] for r in randoms)


def test_supernet_training_resumes_exactly(tmp_path, folder, monkeypatch):
    from mixnet.search import train as strain
    from mixnet.train.distributed import DistInfo

    space = tiny_space(**SMALL)
    splits = strain.build_splits(str(folder), 16, search_fraction=0.25, seed=0, crop_scale=(0.8, 1.0), crop_pct=1.0)
    assert len(splits.search_val) == 16 and len(splits.train) == 48
    recipe = strain.supernet_recipe(epochs=2, batch_size=16, lr=0.01, weight_decay=0.0, seed=0)
    kw = dict(config=recipe, log=lambda *a: None)
    whole = strain.train_supernet(space, splits, tmp_path / "whole", DistInfo(), **kw)

    real = strain.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        raise KeyboardInterrupt

    (tmp_path / "broken").mkdir()
    (tmp_path / "whole").mkdir(exist_ok=True)
    monkeypatch.setattr(strain, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        strain.train_supernet(space, splits, tmp_path / "broken", DistInfo(), **kw)
    monkeypatch.undo()
    resumed = strain.train_supernet(space, splits, tmp_path / "broken", DistInfo(), **kw)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.slow
def test_whole_search_runs_and_resumes(tmp_path, folder):
    """The pipeline end to end on a tiny budget, with a hand-made latency table; a second call redoes nothing."""
    from mixnet.search.config import SearchConfig
    from mixnet.search.run import run_search

    space = SearchSpace()
    entries = [
        {choice_key(c): 0.1 * sum(c.kernels) / 3 + 0.05 * c.expand for c in space.choices()} for _ in space.slots()
    ]
    table = LatencyTable("mixnet_s", 16, 1, 1, "eager", True, machine(), 1.0, entries, num_classes=4)
    table.save(tmp_path / "table.json")
    cfg = SearchConfig(
        data=str(folder),
        img_size=16,
        table=str(tmp_path / "table.json"),
        target=12.0,
        epochs=1,
        batch_size=16,
        population=4,
        generations=2,
        search_fraction=0.25,
        retrain_epochs=1,
        seeds=(0,),
        recal_batches=1,
        check_ranking=4,
        check_ranking_epochs=1,
        latency_check=0,  # the hand-made table predicts no real time
        jobs=2,  # the ranking nets and the retraining two at a time
    )
    out = tmp_path / "search"
    lines: list[str] = []
    result = run_search(cfg, out, log=lines.append)
    assert "ranking check: 4 standalone runs, 2 at a time" in lines
    assert result.found["latency"] <= 12.0 and result.random_best["latency"] <= 12.0
    for name in ("found.json", "random_best.json", "report.md", "pareto.png", "candidates.jsonl", "retrain.jsonl"):
        assert (out / name).exists(), name
    candidates = (out / "candidates.jsonl").read_text().splitlines()
    retrained = (out / "retrain.jsonl").read_text().splitlines()
    ranking = json.loads((out / "ranking.json").read_text())
    # found, random best, the scaled skeleton, and the ranking check's median random net and MACs pick (once if
    # they are the same net)
    baselines = 1 + (ranking["macs_pick"] != ranking["random_median"])
    assert len(retrained) == 3 + baselines and all(json.loads(r)["status"] == "ok" for r in retrained)
    assert f"retraining: {3 + baselines} standalone runs, 2 at a time" in lines
    ranked = (out / "ranking.jsonl").read_text().splitlines()
    assert ranking["nets"] == len(ranked) == 4 and {"supernet", "macs", "params"} <= set(ranking)
    assert all(r["latency"] <= 12.0 for r in ranking["rows"])  # feasible nets only
    assert ranking["macs_pick"] == max(ranking["rows"], key=lambda r: (r["macs"], r["supernet_top1"]))["run"]
    report = (out / "report.md").read_text()
    assert "Did the search win?" in report and "one seed: no significance can be claimed" in report
    summary = json.loads((out / "search_summary.json").read_text())
    assert summary["training_paths"]["sampling"] == "feasible" and summary["training_paths"]["meet_target"] == 1.0
    assert summary["training_paths"]["steps"] == 3  # one epoch of 3 full batches of 16 on the 48 training images
    noise = summary["score_noise"]
    assert noise["ranking_images"] == 16 and noise["ratio"] == pytest.approx(
        noise["noise_sd"] / noise["spread_sd"], abs=1e-4
    )
    assert "paths repaired to meet the target (100% of its 3 training paths" in report
    assert "one supernet score's noise SD" in report
    found = mixnet.create_model(str(out / "found.json"), num_classes=4)
    assert SearchSpace().of_config(found.config)  # a point of the space

    again = run_search(SearchConfig(**{**cfg.__dict__, "jobs": 1}), out, log=lines.append)  # a machine option
    assert again.found == result.found
    assert (out / "candidates.jsonl").read_text().splitlines() == candidates  # nothing re-evaluated
    assert (out / "retrain.jsonl").read_text().splitlines() == retrained  # nothing retrained
    assert (out / "ranking.jsonl").read_text().splitlines() == ranked  # no ranking net trained again
    assert "## Does the supernet rank nets?" in report
    with pytest.raises(ValueError, match="holds results of a different search \\(differs in: population\\)"):
        run_search(SearchConfig(**{**cfg.__dict__, "population": 5}), out, log=lines.append)
    with pytest.raises(ValueError, match="fastest reachable"):
        run_search(SearchConfig(**{**cfg.__dict__, "target": 0.5}), tmp_path / "other", log=lines.append)
    assert not (tmp_path / "other").exists()  # a refused search writes nothing


def test_a_refused_latency_table_leaves_no_folder(tmp_path, folder):
    from mixnet.search.config import SearchConfig
    from mixnet.search.run import run_search

    space = SearchSpace()
    entries = [{choice_key(c): 0.1 for c in space.choices()} for _ in space.slots()]
    LatencyTable("mixnet_s", 16, 1, 2, "eager", True, machine(), 1.0, entries, num_classes=4).save(tmp_path / "t.json")
    cfg = SearchConfig(data=str(folder), img_size=16, table=str(tmp_path / "t.json"), epochs=1, batch_size=16)
    with pytest.raises(ValueError, match="threads 2 \\(wanted 1\\)"):
        run_search(cfg, tmp_path / "out", log=lambda *a: None)
    with pytest.raises(ValueError, match="does not exist"):
        run_search(SearchConfig(**{**cfg.__dict__, "table": str(tmp_path / "no.json")}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_standalone_runs_take_the_search_data_and_the_frozen_recipe(tmp_path):
    """The ranking check and the retraining train with the search's data, size and crops under one recipe;
    the check's shorter schedule overrides the epochs alone."""
    from mixnet.experiment.runs import RECIPES
    from mixnet.search.config import SearchConfig
    from mixnet.search.standalone import RECIPE, train_config

    space = SearchSpace()
    found = str(save_arch(tmp_path / "found.json", space.config(space.sample(random.Random(0)))))
    cfg = SearchConfig(img_size=36, retrain_epochs=5, crop_scale=(0.7, 1.0), crop_pct=0.9)
    run = train_config(cfg, Path("r"), 3, arch=found)
    assert (run.data, run.img_size, run.epochs, run.seed, run.arch) == (cfg.data, 36, 5, 3, found)
    assert tuple(run.crop_scale) == (0.7, 1.0) and run.crop_pct == 0.9 and run.seeded_augmentation
    assert (run.lr, run.batch_size) == (RECIPES[RECIPE].options["lr"], RECIPES[RECIPE].options["batch_size"])
    short = train_config(cfg, Path("r"), 3, arch=found, epochs=2)
    assert short.epochs == 2 and {**short.to_dict(), "epochs": 5} == run.to_dict()


@pytest.mark.slow
def test_an_architecture_file_trains_exports_and_benchmarks(tmp_path, folder, capsys):
    from mixnet.cli import main

    space = SearchSpace()
    config = space.config(space.sample(random.Random(3)))
    path = str(save_arch(tmp_path / "found.json", config))
    run = tmp_path / "run"
    args = ["train", "--arch", path, "--data", str(folder), "--img-size", "16", "--epochs", "1"]
    assert main([*args, "--batch-size", "16", "--workers", "0", "--out", str(run), "--no-progress"]) == 0
    model, spec = mixnet.load_model(run / "model.safetensors")
    assert model.config == config and spec.architecture is None and spec.num_classes == 4
    assert main(["export", "--model", path, "--img-size", "32", "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "model.onnx").is_file()
    bench = ["bench", "--model", path, "--batch-size", "1", "--img-size", "32", "--rounds", "1", "--no-int8"]
    assert main([*bench, "--out", str(tmp_path / "bench")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "bench" / "bench.csv")))
    assert {r["contender"] for r in rows} == {"ours eager", "ours eager (A/A)", "ours optimized", "ours ORT fp32"}
    capsys.readouterr()
    assert main(["train", "--arch", str(tmp_path / "missing.json"), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read architecture file" in capsys.readouterr().err


@pytest.mark.slow
def test_search_supernet_trains_under_torchrun(tmp_path, folder):
    """Two processes (gloo): the supernet trains with DDP, then rank 0 alone searches and writes the results."""
    import os
    import shutil
    import subprocess
    import sys

    exe = shutil.which("mixnet", path=str(Path(sys.executable).parent))
    assert exe, "the mixnet console script is not installed next to this Python"
    space = SearchSpace()
    entries = [
        {choice_key(c): 0.1 * sum(c.kernels) / 3 + 0.05 * c.expand for c in space.choices()} for _ in space.slots()
    ]
    LatencyTable("mixnet_s", 16, 1, 1, "eager", True, machine(), 1.0, entries, num_classes=4).save(tmp_path / "t.json")
    out = tmp_path / "search"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", exe, "search"]
    cmd += ["--data", str(folder), "--table", str(tmp_path / "t.json"), "--target", "12", "--img-size", "16"]
    cmd += ["--epochs", "1", "--batch-size", "8", "--population", "4", "--generations", "2"]
    cmd += ["--retrain-epochs", "0", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "supernet.pth").exists() and (out / "found.json").exists()
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and len({r["arch"] for r in rows if r["method"] == "random"}) == 8  # rank 0 only
    assert proc.stdout.count("found: ") == 1


def test_search_report_names_what_is_missing(tmp_path):
    from mixnet.experiment.folder import ForeignFolderError
    from mixnet.search.report import write_search_report

    with pytest.raises(ForeignFolderError, match="not a search folder"):
        write_search_report(tmp_path)
    (tmp_path / "search.json").write_text(json.dumps({"data": "digits"}))
    with pytest.raises(ValueError, match="the search has not finished \\(no search_summary.json"):
        write_search_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["search.json"]


def _feasible_setup():
    from mixnet.search.config import SearchConfig

    space = tiny_space(**SMALL)
    table, objective, _, _ = _fake(space)
    return space, table, SearchConfig(target=objective.target, seed=3)


def test_the_supernet_trains_on_paths_that_meet_the_target():
    """Constraint-aware sampling: every training path is feasible, where uniform paths mostly are not."""
    from mixnet.search.run import training_path_share, training_sampler
    from mixnet.search.train import path_of_step, training_paths

    space, table, cfg = _feasible_setup()
    sample = training_sampler(cfg, space, table, cfg.target)
    paths = training_paths(space, cfg.seed, 200, sample)
    assert all(table.predict(p) <= cfg.target for p in paths) and len({arch_key(p) for p in paths}) > 100
    uniform = training_paths(space, cfg.seed, 200)
    assert sum(table.predict(p) <= cfg.target for p in uniform) < 150
    assert path_of_step(space, cfg.seed, 17, sample) == paths[17]  # the same path after a resume
    share = training_path_share(cfg, space, table, cfg.target, 200)
    assert (
        share["meet_target"] == 1.0
        and share["uniform_would_meet"] == sum(table.predict(p) <= cfg.target for p in uniform) / 200
    )
    soft = cfg.__class__(**{**cfg.__dict__, "hard": False})
    assert training_sampler(soft, space, table, cfg.target) is None  # no target to meet: the whole space
    off = cfg.__class__(**{**cfg.__dict__, "sampling": "uniform"})
    assert training_path_share(off, space, table, cfg.target, 200)["meet_target"] < 0.75


def test_an_old_search_record_trained_uniform_paths_and_an_old_supernet_is_refused(tmp_path, folder):
    from mixnet.search import train as strain
    from mixnet.search.config import upgrade_record
    from mixnet.train.distributed import DistInfo

    assert upgrade_record({"threads": 1})["sampling"] == "uniform"
    assert upgrade_record({"sampling": "feasible"})["sampling"] == "feasible"
    space = tiny_space(**SMALL)
    splits = strain.build_splits(str(folder), 16, search_fraction=0.25, seed=0, crop_scale=(0.8, 1.0), crop_pct=1.0)
    recipe = strain.supernet_recipe(epochs=1, batch_size=16, lr=0.01, weight_decay=0.0, seed=0)
    state = SuperNet(space, 4).state_dict()
    old = {k.replace("tail.", ""): v for k, v in state.items() if "tail_e1" not in k}  # one set of tail weights
    (tmp_path / "s").mkdir()
    torch.save({"model": old, "optimizer": {}, "epoch": 1}, tmp_path / "s" / strain.SUPERNET_CHECKPOINT)
    with pytest.raises(ValueError, match="holds a supernet of another layout"):
        strain.train_supernet(space, splits, tmp_path / "s", DistInfo(), recipe, log=lambda *a: None)


def test_candidates_are_recalibrated_on_fixed_batches_and_ties_go_to_the_lower_loss(folder):
    from torch.utils.data import DataLoader

    from mixnet.search import train as strain
    from mixnet.search.evolve import Evaluator, best

    space = tiny_space(**SMALL)
    table, objective, _, _ = _fake(space)
    splits = strain.build_splits(str(folder), 16, search_fraction=0.25, seed=0, crop_scale=(0.8, 1.0), crop_pct=1.0)
    torch.manual_seed(0)
    supernet = SuperNet(space, 4).eval()
    torch.nn.init.normal_(supernet.classifier.weight)
    recal = DataLoader(splits.train, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    evaluate = Evaluator(
        supernet,
        table,
        objective,
        recal,
        DataLoader(splits.search_val, batch_size=8),
        recal_batches=2,
        device=torch.device("cpu"),
    )
    arch = space.sample(random.Random(1))
    first = evaluate.score(arch)
    # A shuffling loader draws new batches on every pass; the evaluator's are drawn once.
    assert not torch.equal(next(iter(recal))[0], next(iter(recal))[0])
    assert evaluate.score(arch) == first and len(evaluate.recal) == 2
    other = [x + 1.0 for x in evaluate.recal]
    assert evaluate.score(arch, other) != first
    rows = [{"reward": 50.0, "loss": 1.2, "arch": "a"}, {"reward": 50.0, "loss": 0.9, "arch": "b"}]
    assert best(rows)["arch"] == "b" and best([{"reward": 50.0, "arch": "c"}, *rows])["arch"] == "b"


def test_score_noise_is_the_rescoring_and_binomial_sd_against_the_spread():
    from mixnet.search.run import score_noise

    class Fixed:  # re-scores: a +2, b -2, c +1 points
        def score(self, arch, recal):
            return {"a": (52.0, 0.0), "b": (48.0, 0.0), "c": (61.0, 0.0)}[arch]

    rows = [{"arch": "a", "top1": 50.0}, {"arch": "b", "top1": 50.0}, {"arch": "c", "top1": 60.0}]
    noise = score_noise(Fixed(), {"a": "a", "b": "b", "c": "c"}, rows, None, images=400)
    diffs = [2.0, -2.0, 1.0]
    assert noise["rescore_sd"] == pytest.approx(statistics.stdev(diffs) / math.sqrt(2), abs=1e-4)
    p = statistics.fmean([50, 50, 60]) / 100
    assert noise["binomial_sd"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 400), abs=1e-4)
    assert noise["spread_sd"] == pytest.approx(statistics.stdev([50, 50, 60]), abs=1e-4)
    assert noise["noise_sd"] == pytest.approx(math.hypot(noise["rescore_sd"], noise["binomial_sd"]), abs=1e-3)


def test_what_a_third_would_take_is_solved_from_the_measured_noise():
    from mixnet.search.report import noise_for_a_third

    # p = 0.35 on 450 images; re-scoring SD 1.04 with 4 batches; spread 2.07.
    binomial = 100 * math.sqrt(0.35 * 0.65 / 450)
    noise = {"rescore_sd": 1.04, "binomial_sd": binomial, "spread_sd": 2.07, "ranking_images": 450}
    noise["ratio"] = math.hypot(1.04, binomial) / 2.07
    batches, images = noise_for_a_third(noise, 4)
    part = 2.07 / 3 / math.sqrt(2)
    assert batches == math.ceil(4 * (1.04 / part) ** 2) == 19
    assert images == math.ceil(0.35 * 0.65 / (part / 100) ** 2)
    # At that many batches and images, one score's noise is a third of the spread (to rounding).
    at = math.hypot(1.04 * math.sqrt(4 / batches), 100 * math.sqrt(0.35 * 0.65 / images))
    assert 2.07 / 3 - 0.02 < at <= 2.07 / 3
    assert noise_for_a_third(noise | {"ratio": 0.3}, 4) is None


def test_ranking_correlations_and_verdicts_on_fixed_numbers():
    from scipy import stats as sps

    from mixnet.search.ranking import correlations, ranking_lines

    supernet = [20.1, 22.4, 19.8, 25.0, 23.3, 21.7, 24.2, 18.9]
    standalone = [80.2, 83.5, 81.0, 86.1, 82.9, 82.0, 85.4, 79.3]
    macs = [3.1, 2.9, 3.3, 3.0, 3.2, 2.8, 3.4, 3.1]
    c = correlations(supernet, standalone)
    assert c["kendall"]["value"] == pytest.approx(sps.kendalltau(supernet, standalone).statistic, abs=1e-4)
    assert c["spearman"]["value"] == pytest.approx(sps.spearmanr(supernet, standalone).statistic, abs=1e-4)
    lo, hi = c["kendall"]["ci"]
    assert lo <= c["kendall"]["value"] <= hi and c["kendall"]["n"] == 8
    free = correlations(macs, standalone)
    summary = {"nets": 8, "epochs": 2, "seed": 0, "supernet": c, "macs": free, "params": free}
    text = "\n".join(ranking_lines(summary))
    assert "| supernet top-1 | " in text and "| MACs (free) | " in text
    verdict = "better than both free proxies" if lo > free["kendall"]["value"] else "not resolved"
    assert verdict in text
    flipped = {**summary, "supernet": free, "macs": c}
    assert "does not rank better than a free proxy" in "\n".join(ranking_lines(flipped))

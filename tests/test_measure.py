"""The measurement layer: threads restored, interleaved medians, agreement checks, runners against PyTorch,
the training step against its formula, MAC counting against the analytic count, one whole-net harness."""

import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import mixnet
from mixnet.measure import agreement, machine, runners, timing
from mixnet.measure.macs import count_macs
from mixnet.measure.threads import threads


def test_threads_are_restored_even_after_an_error():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), threads(other):
        raise KeyError("boom")
    assert torch.get_num_threads() == before
    with threads(None):
        assert torch.get_num_threads() == before


def test_interleaved_medians_rotate_the_order_and_count_every_call():
    calls: list[str] = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    medians = timing.interleaved_medians(contenders, rounds=3, iters=2, warmup=1, settle=1)
    assert set(medians) == {"a", "b", "c"} and all(m >= 0 for m in medians.values())
    assert calls[:3] == ["a", "b", "c"]  # the warmup
    timed = calls[3:]
    assert len(timed) == 3 * 3 * (1 + 2)  # rounds x contenders x (settle + iters)
    firsts = [timed[i * 9] for i in range(3)]  # who leads each round
    assert firsts == ["a", "b", "c"]
    with pytest.raises(ValueError):
        timing.interleaved_medians({}, rounds=1)


def test_agreement_per_contender_reference_and_int8_reported_not_checked():
    same = {"a": lambda: torch.ones(2), "b": lambda: torch.ones(2) + 1e-5, "c int8": lambda: torch.zeros(2)}
    assert agreement.check_agreement(same, "a")["c int8"] == 1.0
    with pytest.raises(RuntimeError, match="'b'"):
        agreement.check_agreement({"a": lambda: torch.ones(2), "b": lambda: torch.zeros(2)}, "a")
    pairs = {"x": lambda: torch.ones(2), "x2": lambda: torch.ones(2), "y": lambda: torch.zeros(2), "gemm": lambda: 0}
    diffs = agreement.check_agreement(pairs, {"x2": "x", "y": "y"})  # "gemm" has no reference: skipped
    assert diffs == {"x2": 0.0, "y": 0.0}


def test_agreement_is_relative_to_the_reference_scale_as_in_the_export_check():
    """Logits of ~450 may differ by 0.2 (float32 rounding at that scale); logits of ~1 may not; NaN never agrees."""
    big = torch.tensor([450.0, -3.0])
    ok = {"eager": lambda: big, "file": lambda: big + 0.2}
    assert agreement.check_agreement(ok, "eager")["file"] == pytest.approx(0.2, abs=1e-4)
    with pytest.raises(RuntimeError, match=r"'file': '0\.5 > 0\.45'"):
        agreement.check_agreement({"eager": lambda: big, "file": lambda: big + 0.5}, "eager")
    with pytest.raises(RuntimeError, match="'file'"):
        agreement.check_agreement({"eager": lambda: torch.ones(2), "file": lambda: torch.ones(2) + 0.01}, "eager")
    with pytest.raises(RuntimeError, match="'file'"):
        agreement.check_agreement({"eager": lambda: big, "file": lambda: big * torch.nan}, "eager")
    assert agreement.allowed_difference(0.2) == agreement.allowed_difference(1.0) == agreement.DEFAULT_TOLERANCE
    assert agreement.output_scale([torch.tensor([1.0, -7.0]), torch.tensor([3.0])]) == 7.0


def test_study_and_search_time_whole_nets_with_the_one_harness(monkeypatch):
    """Both latency measurers go through net_latencies_ms, so their milliseconds are comparable."""
    from mixnet.search import netcost
    from mixnet.search.space import SearchSpace
    from mixnet.study import latency as study_latency
    from mixnet.study.spec import study_from_dict

    seen = []

    def fake(contenders, *, rounds=9, progress=False):
        seen.append(len(contenders))
        return {k: 1.0 for k in contenders}

    monkeypatch.setattr(netcost, "net_latencies_ms", fake)
    monkeypatch.setattr(study_latency, "net_latencies_ms", fake)
    space = SearchSpace()
    configs = [space.config(space.sample(random.Random(i))) for i in range(2)]
    got = netcost.measure_configs(configs, img_size=32, batch=1, threads=1)
    assert got == [1.0, 1.0]
    raw = {"name": "t", "models": ["mobilenet_v2"], "width_mult": 0.25, "variants": ["k3", "k3.5"], "seeds": [0]}
    study = study_from_dict({**raw, "data": "unused", "img_size": 16}, check_data=False)
    ms = study_latency.measure_latency(study, num_classes=10)
    assert set(ms.values()) == {1.0} and seen == [2, len(ms)]


def _tiny_onnx(tmp_path, model: nn.Module) -> str:
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False, input_names=["input"])
    return str(path)


def test_onnx_runtime_runner_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5)).eval()
    x = torch.randn(1, 3, 8, 8)
    ref = model(x).detach()
    path = _tiny_onnx(tmp_path, model)
    runner = runners.load_runner(path, threads=1)
    assert isinstance(runner, runners.OrtRunner)
    np.testing.assert_allclose(runner.run(x.numpy()), ref.numpy(), atol=1e-5)
    assert torch.allclose(runners.file_runner(path, x, 1)(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="not an exported model file"):
        runners.load_runner(tmp_path / "model.pt")


def test_openvino_runner_matches_pytorch(tmp_path):
    """In its own process: OpenVINO's native runtime stays out of the test worker."""
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5)).eval()
    x = torch.randn(1, 3, 8, 8)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "ref.npy", model(x).detach().numpy())
    path = _tiny_onnx(tmp_path, model)
    code = (
        "import sys, numpy as np\n"
        "from mixnet.measure.runners import OpenVinoRunner\n"
        f"d = {str(tmp_path)!r}\n"
        f"out = OpenVinoRunner({path!r}, 1).run(np.load(d + '/x.npy'))\n"
        "np.testing.assert_allclose(out, np.load(d + '/ref.npy'), atol=1e-4)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_sgd_step_is_one_plain_sgd_update():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 3)).train()
    twin = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 3)).train()
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    runners.sgd_step_runner(model, x, y, torch.channels_last)()
    nn.functional.cross_entropy(twin(x), y).backward()
    with torch.no_grad():  # first step of SGD with momentum: the buffer is the gradient itself
        expected = [p - 1e-3 * p.grad for p in twin.parameters()]
    for got, want in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_counted_macs_equal_the_analytic_count():
    """The forward-pass counter agrees with our analytic count of MixNet-S's convolutions and linear layer."""
    counted = count_macs(mixnet.create_model("mixnet_s").eval(), 64)
    assert counted == pytest.approx(mixnet.complexity("mixnet_s", 64).conv_linear_macs / 1e6, rel=2e-3)


def test_machine_info_reads_versions_without_importing_the_packages():
    code = (
        "import sys\nfrom mixnet.measure.machine import machine_info, header\n"
        "info = machine_info(3)\n"
        "assert info['threads'] == '3' and info['torch'] and 'openvino' in info, info\n"
        "assert '3 threads' in header(info)\n"
        "assert not {'openvino', 'onnxruntime', 'timm'} & set(sys.modules), sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "threads" not in machine.machine_info()

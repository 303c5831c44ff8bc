"""int8 post-training quantization: a model trained here on the built-in digits keeps its accuracy."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config

import mixnet
import mixnet.deploy.quantize
from mixnet.cli import main
from mixnet.data import build_datasets, eval_transform
from mixnet.deploy.export import ort_session
from mixnet.deploy.quantize import quantize_model, quantize_onnx

SIZE = 28  # the digits' native size: no resizing, and a few hundred steps train in seconds


@pytest.fixture(scope="module")
def digits():
    tf = eval_transform(SIZE, crop_pct=1.0)
    train, val, classes = build_datasets("digits", train_tf=tf, val_tf=tf)
    return train, val, classes


@pytest.fixture(scope="module")
def trained(digits):
    """A small MixNet (MixConv 3/5/7, grouped 1x1, SE, swish) trained for 150 steps: ~85-90% top-1."""
    torch.manual_seed(0)
    train, _, _ = digits
    x = torch.stack([train[i][0] for i in range(len(train))])
    y = torch.tensor(train.targets)
    model = mixnet.MixNet(tiny_config(16, 96), num_classes=10).train()
    opt = torch.optim.AdamW(model.parameters(), 5e-3)
    for _ in range(150):
        i = torch.randint(0, len(x), (64,))
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    # BN statistics re-estimated on the final weights (a cumulative average over 16 batches): after only
    # 150 steps the running averages still lag the weights, and eval accuracy would depend on the seed.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        for _ in range(16):
            model(x[torch.randint(0, len(x), (128,))])
    return model.eval()


@pytest.mark.slow
def test_int8_within_one_point_of_fp32(tmp_path, digits, trained, monkeypatch):
    train, val, _ = digits
    # The timer is replaced by one that runs each contender once and reports fixed times, so the test
    # can check what is timed (which model, which batch) and how the times reach the report.
    timed = {}

    def fake_medians(fns, **kwargs):
        timed.update({k: fn() for k, fn in fns.items()})
        return {"fp32": 0.004, "int8": 0.001}

    monkeypatch.setattr(mixnet.deploy.quantize, "interleaved_medians", fake_medians)
    report = quantize_model(
        trained, tmp_path, calib_set=train, eval_set=val, img_size=SIZE, calib_images=256, speed_batch=3
    )
    assert report.fp32_top1 > 70  # trained: the comparison means something
    assert abs(report.accuracy_drop) <= 1.0, report.as_dict()
    assert report.calib_images == 256 and report.eval_images == len(val) == 500
    ops = {n.op_type for n in onnx.load(str(report.int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [
        t for t in onnx.load(str(report.int8_path)).graph.initializer if t.data_type == onnx.TensorProto.INT8
    ]
    assert len(int8_weights) >= 10  # the convs' weights really are int8
    # Accuracies, recomputed independently: eager PyTorch for fp32 (ONNX Runtime agrees with it to 1e-4,
    # so at most a near-tie may flip), a fresh ONNX Runtime loop for int8.
    x = torch.stack([val[i][0] for i in range(len(val))])
    y = torch.tensor([val[i][1] for i in range(len(val))])
    with torch.no_grad():
        eager_top1 = 100.0 * (trained(x).argmax(1) == y).float().mean().item()
    assert abs(report.fp32_top1 - eager_top1) <= 0.2  # one image of 500
    int8_logits = ort_session(report.int8_path, 1).run(None, {"input": x.numpy()})[0]
    assert report.int8_top1 == pytest.approx(100.0 * (int8_logits.argmax(1) == y.numpy()).mean())
    # Speed: each contender ran its own model on a batch of speed_batch, and ms/speedup follow the timer.
    xs = np.random.default_rng(0).standard_normal((3, 3, SIZE, SIZE), dtype=np.float32)
    for key, path in (("fp32", report.fp32_path), ("int8", report.int8_path)):
        assert timed[key][0].shape == (3, 10)
        np.testing.assert_allclose(timed[key][0], ort_session(path, 1).run(None, {"input": xs})[0], atol=1e-5)
    assert (report.fp32_ms, report.int8_ms, report.speed_batch) == (4.0, 1.0, 3)
    assert report.speedup == pytest.approx(4.0) and report.as_dict()["speedup"] == pytest.approx(4.0)


def test_quantize_onnx_op_types_limits_what_is_quantized(tmp_path):
    # Every op ONNX Runtime can quantize (the default) vs the convolutions only: fewer tensors get a
    # quantize/dequantize pair, and the weights of the convolutions are int8 in both.
    from mixnet.deploy.export import to_onnx

    torch.manual_seed(0)
    fp32 = to_onnx(mixnet.MixNet(tiny_config(16, 96), num_classes=10).eval(), tmp_path / "m.onnx", img_size=SIZE).path
    calib = [np.random.default_rng(0).standard_normal((4, 3, SIZE, SIZE), dtype=np.float32)]

    def counts(path):
        graph = onnx.load(str(path)).graph
        n_q = sum(n.op_type == "QuantizeLinear" for n in graph.node)
        return n_q, sum(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)

    every = counts(quantize_onnx(fp32, tmp_path / "all.onnx", calibration=calib))
    convs = counts(quantize_onnx(fp32, tmp_path / "conv.onnx", calibration=calib, op_types=["Conv"]))
    n_convs = sum(n.op_type == "Conv" for n in onnx.load(str(fp32)).graph.node)
    assert convs[0] < every[0], (convs, every)
    assert convs[1] >= n_convs and every[1] >= n_convs


def test_quantize_onnx_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx", calibration=[])
    with pytest.raises(ValueError, match="method"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx", calibration=[], method="magic")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speed_batch": 0}, "speed_batch must be a positive integer, got 0"),
        ({"speed_rounds": -1}, "speed_rounds must be a positive integer, got -1"),
        ({"threads": 1.5}, "threads must be a positive integer, got 1.5"),
        ({"calib_images": 0}, "calib_images must be a positive integer, got 0"),
        ({"method": "magic"}, "method must be one of"),
    ],
)
def test_quantize_model_rejects_bad_options_before_exporting(tmp_path, kwargs, message):
    model = mixnet.create_model("mixnet_s", num_classes=10)
    with pytest.raises(ValueError, match=message):
        quantize_model(model, tmp_path / "q", calib_set=[], eval_set=[], img_size=32, **kwargs)
    assert not (tmp_path / "q").exists()


@pytest.mark.slow
def test_cli_quantize(tmp_path, capsys, monkeypatch):
    # The CLI wiring on a registered model with a 10-class checkpoint (random weights: accuracy ~10%).
    model = mixnet.create_model("mixnet_s", num_classes=10)
    ckpt = tmp_path / "ckpt.pth"
    names = [str(i) for i in range(10)]
    torch.save({"model": model.state_dict(), "class_names": names, "model_name": "mixnet_s", "img_size": 32}, ckpt)
    seen = {}
    real = mixnet.deploy.quantize.quantize_model

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mixnet.deploy.quantize, "quantize_model", spy)
    args = ["quantize", "--weights", str(ckpt), "--calib-images", "32", "--rounds", "2"]
    # The shared eval-transform options: mean/std 0.5 map every pixel into [-1, 1] (ImageNet's would not).
    args += ["--mean", "0.5", "0.5", "0.5", "--std", "0.5", "0.5", "0.5", "--interpolation", "bilinear"]
    assert main([*args, "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "int8 speed-up" in out and "held-out" in out
    assert (tmp_path / "q" / "mixnet_s.int8.onnx").is_file()
    calib = torch.stack([seen["calib_set"][i][0] for i in range(32)])
    assert calib.shape[-2:] == (32, 32) and calib.min() >= -1 - 1e-6 and calib.max() <= 1 + 1e-6
    assert calib.min() < -0.5 and seen["speed_rounds"] == 2
    for option in ("--batch-size", "--rounds", "--threads", "--calib-images"):
        with pytest.raises(SystemExit) as exit_info:
            main(["quantize", "--weights", str(ckpt), option, "0", "--out", str(tmp_path / "z")])
        assert exit_info.value.code == 2
        assert f"argument {option}: expected a positive integer, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    bad = tmp_path / "bad.pth"
    torch.save({"model": mixnet.create_model("mixnet_s", num_classes=7).state_dict(), "model_name": "mixnet_s"}, bad)
    assert main(["quantize", "--weights", str(bad), "--img-size", "32", "--out", str(tmp_path / "b")]) == 2
    assert "10 classes but the model has 7" in capsys.readouterr().err


def test_quantize_reports_what_eval_of_each_file_reports_and_leaves_the_export_alone(tmp_path, digits, trained, capsys):
    """The int8 and fp32 top-1 that quantize prints is what ``mixnet eval --weights FILE`` gives for that file
    (each records the class names and preprocessing); ``export``'s <name>.onnx in the same folder stays."""
    import json

    from mixnet.deploy.exported import read_export_spec
    from mixnet.io import ModelSpec
    from mixnet.models.preprocess import Preprocess

    _, _, classes = digits
    spec = ModelSpec.from_model(trained, class_names=classes, preprocess=Preprocess(img_size=SIZE, crop_pct=1.0))
    weights = mixnet.save_model(tmp_path / "digits.safetensors", trained, spec)
    out = tmp_path / "exports"
    assert main(["export", "--weights", str(weights), "--out", str(out), "--name", "m"]) == 0
    exported = (out / "m.onnx").read_bytes()
    capsys.readouterr()
    args = ["quantize", "--weights", str(weights), "--out", str(out), "--name", "m", "--calib-images", "64"]
    assert main([*args, "--rounds", "1", "--threads", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (out / "m.onnx").read_bytes() == exported
    assert sorted(p.name for p in out.iterdir()) == ["m.fp32.onnx", "m.int8.onnx", "m.onnx"]
    assert report["fp32_top1"] > 70  # trained: the figures mean something
    for key, name in (("fp32_top1", "m.fp32.onnx"), ("int8_top1", "m.int8.onnx")):
        assert read_export_spec(out / name).class_names == tuple(classes)
        assert main(["eval", "--weights", str(out / name), "--json", "--workers", "0", "--threads", "1"]) == 0
        evaluated = json.loads(capsys.readouterr().out)
        assert evaluated["n"] == report["eval_images"] == 500
        assert evaluated["top1"] == pytest.approx(report[key]), name

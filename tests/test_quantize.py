"""int8 post-training quantization: a model trained here on the built-in digits keeps its accuracy."""

import onnx
import pytest
import torch
import torch.nn.functional as F

import mixnet
from mixnet.cli import main
from mixnet.data import build_datasets, eval_transform
from mixnet.quantize import quantize_model, quantize_onnx

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
    config = mixnet.MixNetConfig.from_strings(
        [["r1_k3_a1_p1_s11_e1_i16_o16"], ["r1_k3.5.7_a1.1_p1.1_s22_e3_i16_o24_se0.5_sw"]],
        stem_channels=16,
        head_channels=96,
    )
    model = mixnet.MixNet(config, num_classes=10).train()
    opt = torch.optim.AdamW(model.parameters(), 5e-3)
    for _ in range(150):
        i = torch.randint(0, len(x), (64,))
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_int8_within_one_point_of_fp32(tmp_path, digits, trained):
    train, val, _ = digits
    report = quantize_model(
        trained, tmp_path, calib_set=train, eval_set=val, img_size=SIZE, calib_images=256, speed_rounds=3
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
    assert report.fp32_ms > 0 and report.int8_ms > 0


def test_quantize_onnx_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx", calibration=[])
    with pytest.raises(ValueError, match="method"):
        quantize_onnx(tmp_path / "none.onnx", tmp_path / "q.onnx", calibration=[], method="magic")


def test_cli_quantize(tmp_path, capsys):
    # The CLI wiring on a registered model with a 10-class checkpoint (random weights: accuracy ~10%).
    model = mixnet.create_model("mixnet_s", num_classes=10)
    ckpt = tmp_path / "ckpt.pth"
    names = [str(i) for i in range(10)]
    torch.save({"model": model.state_dict(), "class_names": names, "model_name": "mixnet_s", "img_size": 32}, ckpt)
    args = ["quantize", "--checkpoint", str(ckpt), "--calib-images", "32", "--out", str(tmp_path / "q")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "int8 speed-up" in out and "held-out" in out
    assert (tmp_path / "q" / "mixnet_s.int8.onnx").is_file()
    bad = tmp_path / "bad.pth"
    torch.save({"model": mixnet.create_model("mixnet_s", num_classes=7).state_dict(), "model_name": "mixnet_s"}, bad)
    assert main(["quantize", "--checkpoint", str(bad), "--img-size", "32", "--out", str(tmp_path / "b")]) == 2
    assert "10 classes but the model has 7" in capsys.readouterr().err

"""ONNX / TorchScript / torch.export / OpenVINO: parity with eager PyTorch and timm, dynamic batch, static SAME."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import timm
import torch
from conftest import randomize_bn, tiny_config
from torch import nn

import mixnet
from mixnet.bench.files import bench_files
from mixnet.cli import main
from mixnet.deploy import export as export_module
from mixnet.deploy.export import (
    DEFAULT_TOLERANCE,
    FORMATS,
    ExportCheckError,
    _check,
    available_formats,
    export,
    ort_session,
    to_onnx,
    to_openvino,
    to_torch_export,
    to_torchscript,
)
from mixnet.io.convert import from_timm

SIZE = 64


def _timm_pair(name: str) -> tuple[nn.Module, nn.Module]:
    """timm's model with random weights and BN statistics, and ours loaded with the same weights."""
    ref = timm.create_model(name).eval()
    g = torch.Generator().manual_seed(3)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.2 * torch.rand(m.num_features, generator=g) - 0.1)
            m.running_var.copy_(0.8 + 0.4 * torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.8 + 0.4 * torch.rand(m.num_features, generator=g))
    ours = mixnet.create_model(name).eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    return ref, ours


def _ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixnet_s", "tf_mixnet_s"])
def test_onnx_of_optimized_model_matches_timm_in_onnxruntime(tmp_path, name):
    # Independent reference: timm's own model with the same weights, run eagerly.
    ref, ours = _timm_pair(name)
    result = to_onnx(ours, tmp_path / "m.onnx", img_size=SIZE, batch=2)
    assert result.max_abs_diff <= 1e-4 and result.check_batch == 3
    x = torch.randn(5, 3, SIZE, SIZE)  # another batch size than exported: the batch axis is dynamic
    out = ort_session(result.path, 2).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        expected = ref(x).numpy()
    assert out.shape == (5, 1000)
    assert np.abs(out - expected).max() <= 1e-4
    assert np.abs(expected).max() > 0.1
    # BN folded, every MixConv fused (64px: all below the NCHW rule's 28x28 limit), SAME pads folded
    # into Conv's pads by the exporter's optimizer; swish and SE are Sigmoid/Mul/ReduceMean.
    assert set(_ops(result.path)) == {"Conv", "Relu", "Sigmoid", "Mul", "Add", "ReduceMean", "Reshape", "Gemm"}


def test_onnx_export_fuses_every_mixconv(tmp_path):
    # At 128 px the 32x32 stages.2.0 MixConv is above the PyTorch NCHW rule's 28x28 limit, so that rule
    # keeps it split; the ONNX rewrite fuses it (blocked layouts in ONNX Runtime and OpenVINO).
    from mixnet.deploy.optimize import optimize_for_inference

    model = mixnet.create_model("mixnet_s").eval()
    assert (
        optimize_for_inference(model, img_size=128, channels_last=False).plan.choices["stages.2.0.dw_conv"] == "split"
    )
    result = to_onnx(model, tmp_path / "m.onnx", img_size=128)
    assert result.max_abs_diff <= 1e-4
    ops = _ops(result.path)
    assert "Split" not in ops and "Concat" not in ops
    n_dw = sum(1 for s in model.stages for b in s)  # one depthwise conv per block, none split
    assert ops.count("Conv") >= n_dw


@pytest.mark.slow
@pytest.mark.parametrize("optimize", [True, False])
def test_tf_same_padding_exports_without_shape_ops(tmp_path, optimize):
    # 65px: odd at every stride-2 input, where TF SAME pads one more pixel bottom/right.
    model = mixnet.create_model("tf_mixnet_s").eval()
    result = to_onnx(model, tmp_path / "tf.onnx", img_size=65, optimize=optimize)
    assert result.max_abs_diff <= 1e-4  # ONNX Runtime vs the original eager model, values not just shape
    graph = onnx.load(str(result.path)).graph
    # The static pads are right only at 65px: the graph's input fixes that size (only batch is dynamic).
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 65, 65]
    assert not [n for n in graph.node if n.op_type == "Shape"]
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }
    for pad in (n for n in graph.node if n.op_type == "Pad"):
        assert pad.input[1] in constants  # pad amounts are constants, not computed from the input shape


@pytest.mark.slow
def test_torchscript_and_torch_export_round_trip(tmp_path):
    model = mixnet.create_model("tf_mixnet_m").eval()
    ts = to_torchscript(model, tmp_path / "m.ts.pt", img_size=SIZE)
    ep = to_torch_export(model, tmp_path / "m.pt2", img_size=SIZE)
    assert ts.max_abs_diff <= 1e-4 and ep.max_abs_diff <= 1e-4
    x = torch.randn(4, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model(x)
        assert (torch.jit.load(str(ts.path))(x) - expected).abs().max() <= 1e-4
        program = torch.export.load(str(ep.path)).module()
        assert (program(x) - expected).abs().max() <= 1e-4
        # Static SAME pads are only right at SIZE: the program guards the spatial size.
        with pytest.raises(AssertionError, match=rf"Guard failed: x.size\(\)\[2\] == {SIZE}"):
            program(torch.randn(2, 3, SIZE + 1, SIZE + 1))


def test_a_channels_last_model_exports(tmp_path):
    """A model kept in channels_last (as for training) exports and matches; ``torch.export`` failed on
    this net when its weights mixed the two layouts."""
    cfg = mixnet.MixNetConfig.from_strings(
        [["r1_k3_a1_p1_s11_e1_i8_o8"], ["r1_k3_a1_p1.1_s22_e3_i8_o16_se0.5", "r1_k3.5_a1.1_p1_s11_e3_i16_o16_sw"]],
        stem_channels=8,
        head_channels=32,
    )
    model = mixnet.MixNet(cfg, num_classes=5).eval().to(memory_format=torch.channels_last)
    for optimize in (True, False):
        result = to_onnx(model, tmp_path / f"cl{optimize}.onnx", img_size=16, optimize=optimize)
        assert result.max_abs_diff < 1e-4


@pytest.mark.slow
def test_failed_check_raises_and_leaves_no_file(tmp_path):
    model = mixnet.create_model("mixnet_s").eval()
    with pytest.raises(ExportCheckError, match="differs from the eager model"):
        to_onnx(model, tmp_path / "bad.onnx", img_size=32, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="batch of at least 2"):
        to_torch_export(model, tmp_path / "m.pt2", img_size=32, batch=1)


@pytest.mark.slow
def test_cli_export(tmp_path, capsys):
    assert main(["export", "--model", "mixnet_s", "--img-size", "32", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mixnet_s.onnx").is_file()
    assert "max |diff| vs eager" in capsys.readouterr().out
    assert main(["export", "--model", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown model" in capsys.readouterr().err


# --- OpenVINO IR, the spec the files record, the check's scale -------------------------------------------------


@pytest.mark.parametrize("name", ["mixnet_s", "tf_mixnet_s"])
def test_openvino_ir_matches_timm_in_openvino(tmp_path, name):
    """OpenVINO's IR of ours equals timm's eager model with the same weights, run in OpenVINO at another
    batch size; 65 px is odd at every stride-2 input, where TF SAME pads one more pixel bottom/right."""
    from mixnet.measure.runners import OpenVinoRunner

    ref, ours = _timm_pair(name)
    result = to_openvino(ours, tmp_path / f"{name}.xml", img_size=65, batch=2, threads=1)
    assert result.max_abs_diff <= 1e-4 and result.check_batch == 3 and result.format == "openvino"
    assert result.path.with_suffix(".bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.bin", f"{name}.xml"]  # no partial files
    x = torch.randn(5, 3, 65, 65)
    out = OpenVinoRunner(result.path, 1).run(x.numpy())
    with torch.no_grad():
        expected = ref(x).numpy()
    assert out.shape == (5, 1000) and np.abs(expected).max() > 0.1
    assert np.abs(out - expected).max() <= 1e-4
    # fp32 weights, as exported: OpenVINO's save_model would halve them to fp16 by default.
    assert result.path.with_suffix(".bin").stat().st_size >= 4 * sum(p.numel() for p in ours.parameters()) * 0.99


def test_exported_files_record_the_spec_at_the_exported_size(tmp_path):
    from mixnet.deploy.exported import read_export_spec
    from mixnet.io import ModelSpec
    from mixnet.models.preprocess import Preprocess

    model = mixnet.create_model("tf_mixnet_s", num_classes=3).eval()
    spec = ModelSpec.from_model(model, class_names=["cat", "dog", "eel"], preprocess=Preprocess(img_size=32))
    results = export(model, tmp_path, ["onnx", "openvino"], name="m", img_size=48, spec=spec, threads=1)
    for r in results:
        recorded = read_export_spec(r.path)
        assert recorded.class_names == ("cat", "dog", "eel") and recorded.architecture == "tf_mixnet_s"
        assert recorded.preprocess == spec.preprocess.replace(img_size=48)  # the graph's size, not the training's
    metadata = {p.key: p.value for p in onnx.load(str(results[0].path)).metadata_props}
    assert ModelSpec.from_json(metadata["mixnet.spec"]) == read_export_spec(results[1].path)


def test_the_check_is_relative_to_the_output_scale(tmp_path):
    """Logits of ~1,000 (as a model exported at another size than it was trained at gives) pass the default
    check; the same difference at a scale of 1 fails, and the error names the option that loosens it."""
    model = mixnet.create_model("mixnet_s", num_classes=10).eval()
    randomize_bn(model)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1)
        model.classifier.weight.mul_(1000 / model(torch.randn(2, 3, 64, 64)).abs().max())
    result = to_onnx(model, tmp_path / "big.onnx", img_size=64)
    assert result.scale > 300 and result.max_abs_diff <= DEFAULT_TOLERANCE * result.scale
    _check("onnx", 0.5, 1000.0, DEFAULT_TOLERANCE, tmp_path / "x.onnx")  # within 1e-3 of the scale
    with pytest.raises(ExportCheckError, match=r"> 0\.001 \(tolerance 0\.001 x output scale 1\).*--tolerance"):
        _check("onnx", 0.5, 0.2, DEFAULT_TOLERANCE, tmp_path / "x.onnx")


def test_a_file_that_passes_its_export_check_passes_the_benchmarks_agreement_check(tmp_path):
    """Export and ``mixnet bench --model FILE`` judge agreement by one rule: logits so large that float32
    rounding alone differs by more than 1e-3 pass both."""
    model = mixnet.create_model("mixnet_s", num_classes=10).eval()
    randomize_bn(model)
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1)
        model.classifier.weight.mul_(20_000 / model(torch.randn(2, 3, 64, 64)).abs().max())
    result = to_onnx(model, tmp_path / "big.onnx", img_size=64)
    rows = bench_files([result.path], (2,), model=model, threads=1, rounds=1, iters=1, progress=False)
    assert {r.contender for r in rows} == {"PyTorch eager", "PyTorch optimized", "big.onnx (ORT)"}
    assert max(r.max_abs_diff for r in rows) > 1e-3  # more than an absolute 1e-3 bar would let through


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_a_file_the_runtime_cannot_load_is_not_kept(tmp_path, monkeypatch, fmt):
    """The written file is cut in half (as a kill or a full disk can leave it) before the runtime loads it for
    the check: the load fails, and no file is kept, the OpenVINO weights (.bin) included."""
    loader = "ort_session" if fmt == "onnx" else "OpenVinoRunner"
    load = getattr(export_module, loader)

    def cut_then_load(path, *args, **kwargs):
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        return load(path, *args, **kwargs)

    monkeypatch.setattr(export_module, loader, cut_then_load)
    model = mixnet.MixNet(tiny_config(), num_classes=3).eval()
    to_file = to_onnx if fmt == "onnx" else to_openvino
    with pytest.raises(Exception):  # noqa: B017, PT011 - each runtime raises its own error for a broken file
        to_file(model, tmp_path / f"m{'.onnx' if fmt == 'onnx' else '.xml'}", img_size=16)
    assert list(tmp_path.iterdir()) == []


def test_failed_openvino_check_leaves_no_file(tmp_path):
    model = mixnet.create_model("mixnet_s", num_classes=3).eval()
    with pytest.raises(ExportCheckError, match="openvino export"):
        to_openvino(model, tmp_path / "bad.xml", img_size=32, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"an OpenVINO IR is an \.xml file"):
        to_openvino(model, tmp_path / "bad.onnx", img_size=32)


def test_cli_export_all_formats_as_json(tmp_path, capsys):
    assert "openvino" in available_formats()  # installed with the test environment
    args = ["export", "--model", "mixnet_s", "--img-size", "32", "--format", "all", "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["format"] for f in out["files"]] == list(FORMATS)
    assert all(Path(f["path"]).is_file() and f["max_abs_diff"] <= 1e-4 for f in out["files"])
    assert (out["img_size"], out["num_classes"], out["tolerance"]) == (32, 1000, DEFAULT_TOLERANCE)

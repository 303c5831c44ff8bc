"""The paper's baselines: MobileNetV1/V2 from the MixNet block data, exact against timm and torchvision,
and the kernel variants of the paper's study (one size, MixConv groups, exponential split, dilation)."""

import pytest
import timm
import torch
import torchvision
from conftest import randomize_bn
from torch import nn

import mixnet
from mixnet.io.convert import from_timm, from_torchvision_mobilenet_v2
from mixnet.layers.mixconv import split_channels
from mixnet.models.arch import format_block, parse_block
from mixnet.models.configs import KernelSpec

ODD = (2, 3, 97, 113)
TOL = 1e-4


def _x(shape=ODD, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("name", "ref"), [("mobilenet_v1", "mobilenetv1_100"), ("mobilenet_v2", "mobilenetv2_100")])
def test_logits_equal_timm(name, ref):
    theirs = randomize_bn(timm.create_model(ref).eval())
    ours = mixnet.create_model(name).eval()
    ours.load_state_dict(from_timm(theirs.state_dict()))
    with torch.no_grad():
        assert (ours(_x()) - theirs(_x())).abs().max().item() <= TOL


@pytest.mark.parametrize("width", [1.0, 0.5, 1.4])
def test_logits_equal_torchvision_mobilenet_v2(width):
    theirs = randomize_bn(torchvision.models.mobilenet_v2(width_mult=width).eval())
    ours = mixnet.create_model("mobilenet_v2", width_mult=width).eval()
    ours.load_state_dict(from_torchvision_mobilenet_v2(theirs.state_dict()))  # strict: every key maps
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    with torch.no_grad():
        assert (ours(_x()) - theirs(_x())).abs().max().item() <= TOL


def test_torchvision_converter_names_an_unknown_key():
    sd = torchvision.models.mobilenet_v2().state_dict()
    sd["features.99.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="features.99.weight"):
        from_torchvision_mobilenet_v2(sd)


def test_structure_of_the_baselines():
    v1, v2 = mixnet.create_model("mobilenet_v1"), mixnet.create_model("mobilenet_v2")
    # V1: no shortcuts even where stride is 1 and widths match, an activated projection, no head conv.
    blocks = [b for s in v1.stages for b in s]
    assert len(blocks) == 13 and not any(b.has_skip for b in blocks)
    assert all(isinstance(b.project_act, nn.ReLU6) for b in blocks)
    assert isinstance(v1.head, nn.Identity) and v1.num_features == 1024
    # V2: shortcuts where they fit, linear projections, head 1280, ReLU6 everywhere else.
    blocks = [b for s in v2.stages for b in s]
    assert len(blocks) == 17 and sum(b.has_skip for b in blocks) == 10
    assert all(isinstance(b.project_act, nn.Identity) for b in blocks)
    assert v2.num_features == 1280 and isinstance(v2.stem.act, nn.ReLU6)
    assert not any(isinstance(m, nn.ReLU) for m in list(v1.modules()) + list(v2.modules()))
    # The head widens only above width 1 (torchvision and timm).
    assert mixnet.create_model("mobilenet_v2", width_mult=0.5).num_features == 1280
    assert mixnet.create_model("mobilenet_v2", width_mult=1.4).num_features == 1792


def test_block_tokens_round_trip():
    b = parse_block("r2_k3_a1_p1_s22_e1_i64_o128_pact_noskip")
    assert b.project_act and not b.skip and format_block(b) == "r2_k3_a1_p1_s22_e1_i64_o128_pact_noskip"
    with pytest.raises(ValueError, match="unknown token 'pactx'"):
        parse_block("r1_k3_a1_p1_s11_e1_i8_o8_pactx")


@pytest.mark.parametrize(
    ("text", "kernels", "split", "dilated"),
    [
        ("k7", (7,), "equal", False),
        ("3.5.7", (3, 5, 7), "equal", False),
        ("k3.5.7.9-exp", (3, 5, 7, 9), "exponential", False),
        ("k9-dil", (9,), "equal", True),
        ("k3.5-exp-dil", (3, 5), "exponential", True),
    ],
)
def test_kernel_spec_parse(text, kernels, split, dilated):
    spec = KernelSpec.parse(text)
    assert (spec.kernels, spec.split, spec.dilated) == (kernels, split, dilated)
    assert KernelSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("bad", ["k4", "kx", "k3.5-wide", "k3-exp-exp", "", "k0"])
def test_kernel_spec_errors(bad):
    with pytest.raises(ValueError):
        KernelSpec.parse(bad)


def test_mixconv_groups():
    assert KernelSpec.mixconv(1).kernels == (3,)
    assert KernelSpec.mixconv(4).kernels == (3, 5, 7, 9)
    assert str(KernelSpec.mixconv(6, split="exponential")) == "k3.5.7.9.11.13-exp"


def test_kernel_variants_reach_every_depthwise_conv():
    exp = mixnet.create_model("mobilenet_v2", kernels="k3.5.7.9-exp")
    dws = [b.dw_conv for s in exp.stages for b in s]
    assert all(dw.kernel_sizes == [3, 5, 7, 9] for dw in dws)
    assert all(dw.in_splits == split_channels(dw.in_channels, 4, "exponential") for dw in dws)
    dil = mixnet.create_model("mobilenet_v1", kernels="k3.5.7-dil")
    convs = [b.dw_conv.convs for s in dil.stages for b in s]
    assert all([c.kernel_size for c in cs] == [(3, 3)] * 3 for cs in convs)
    assert all([c.dilation for c in cs] == [(1, 1), (2, 2), (3, 3)] for cs in convs)
    # Same receptive field, same output size as the plain kernels.
    plain = mixnet.create_model("mobilenet_v1", kernels="k3.5.7")
    assert dil(_x()).shape == plain(_x()).shape
    # The registered architecture is untouched.
    assert all(
        dw.kernel_sizes == [3] for dw in [b.dw_conv for s in mixnet.create_model("mobilenet_v2").stages for b in s]
    )


@pytest.mark.parametrize("kernels", ["k5", "k3.5.7-exp", "k3.5.7.9-dil"])
def test_complexity_of_variants_matches_the_built_model(kernels):
    model = mixnet.create_model("mobilenet_v2", kernels=kernels, width_mult=0.5)
    c = mixnet.complexity("mobilenet_v2", kernels=kernels, width_mult=0.5)
    assert c.params == sum(p.numel() for p in model.parameters())
    # Larger kernels cost more; dilated 3x3s cost what 3x3s cost.
    base = mixnet.complexity("mobilenet_v2", width_mult=0.5)
    assert c.macs > base.macs or kernels.endswith("-dil")


def test_paper_macs_within_five_percent():
    assert abs(mixnet.complexity("mobilenet_v1").macs / 575e6 - 1) < 0.05
    assert abs(mixnet.complexity("mobilenet_v2").macs / 300e6 - 1) < 0.05


def test_too_many_exponential_groups_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot split 16 channels into 6 exponential groups"):
        mixnet.create_model("mobilenet_v2", width_mult=0.35, kernels="k3.5.7.9.11.13-exp")


def test_variant_model_file_round_trip(tmp_path):
    model = randomize_bn(mixnet.create_model("mobilenet_v2", width_mult=0.5, kernels="k3.5.7-exp", num_classes=7))
    path = tmp_path / "v.safetensors"
    mixnet.save_model(path, model)
    loaded, spec = mixnet.load_model(path)
    assert spec.architecture == "mobilenet_v2" and loaded.config == model.config.replace()
    assert loaded.config.dw_split == "exponential" and loaded.stages[0][0].dw_conv.kernel_sizes == [3, 5, 7]
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(_x()), model(_x()))


@pytest.mark.parametrize(("name", "kernels"), [("mobilenet_v1", "k3.5.7"), ("mobilenet_v2", "k3.5.7.9-dil")])
def test_inference_rewrite_is_exact(name, kernels):
    model = randomize_bn(mixnet.create_model(name, kernels=kernels, width_mult=0.5)).eval()
    fast = mixnet.optimize_for_inference(model)
    with torch.no_grad():
        assert (fast(_x()) - model(_x())).abs().max().item() <= TOL


def test_no_hub_weights_is_a_clear_error():
    from mixnet.errors import HubError
    from mixnet.io.pretrained import load_pretrained
    from mixnet.models.registry import ModelEntry, get_entry

    entry = ModelEntry("x", get_entry("mobilenet_v1").config)
    with pytest.raises(HubError, match="no published weights"):
        load_pretrained(mixnet.create_model("mobilenet_v1"), entry, True)

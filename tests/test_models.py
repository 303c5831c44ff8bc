"""Every registered model: shapes, gradients, exact sizes, and equality with timm's implementation."""

import pytest
import timm
import torch
from conftest import randomize_bn
from torch.utils._python_dispatch import TorchDispatchMode

import mixnet
from mixnet.io.convert import from_timm, to_timm
from mixnet.models.complexity import complexity
from mixnet.models.registry import get_entry

MODELS = mixnet.list_models()
# Published parameter counts (timm and the fixed TF reference agree); the paper's table for S/M/L.
PARAMS = {
    "mixnet_s": 4_134_606,
    "mixnet_m": 5_014_382,
    "mixnet_l": 7_329_252,
    "mixnet_xl": 11_896_768,
    "tf_mixnet_s": 4_134_606,
    "tf_mixnet_m": 5_014_382,
    "tf_mixnet_l": 7_329_252,
    "mobilenet_v1": 4_231_976,  # timm mobilenetv1_100
    "mobilenet_v2": 3_504_872,  # torchvision mobilenet_v2 = timm mobilenetv2_100
}
PAPER_MACS = {"mixnet_s": 256e6, "mixnet_m": 360e6, "mixnet_l": 565e6, "mobilenet_v1": 575e6, "mobilenet_v2": 300e6}


def test_registry_has_all_models():
    assert set(PARAMS) <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_param_count(name):
    model = mixnet.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    assert complexity(name).params == PARAMS[name]


@pytest.mark.parametrize("name", MODELS)
def test_equal_to_timm_with_converted_weights(name):
    ref = timm.create_model(get_entry(name).timm_model, pretrained=False).eval()
    randomize_bn(ref)
    ours = mixnet.create_model(name).eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-4, f"{name}: max abs logit difference {diff}"
    # And back: our weights load strictly into timm's model.
    back = to_timm(ours.state_dict())
    assert list(back) == list(ref.state_dict())
    ref.load_state_dict(back)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_odd_input_size(name):
    model = mixnet.create_model(name, num_classes=10, drop_path_rate=0.1).train()
    x = torch.randn(2, 3, 67, 75)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_features_only_matches_timm(name):
    ours = mixnet.create_model(name, features_only=True).eval()
    ref = timm.create_model(get_entry(name).timm_model, features_only=True)
    x = torch.randn(1, 3, 96, 96)
    feats = ours(x)
    assert [f.shape[1] for f in feats] == ref.feature_info.channels()
    assert [96 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 32] == [f["reduction"] for f in ours.feature_info]
    two = mixnet.create_model(name, features_only=True, out_indices=(3, 4))
    assert [f.shape[1] for f in two(x)] == ref.feature_info.channels()[3:]


class OpCounter(TorchDispatchMode):
    """Counts what a forward pass computes, operation by operation, in the categories of complexity()."""

    def __init__(self):
        super().__init__()
        self.counts = {"conv": 0, "linear": 0, "bn": 0, "act": 0, "other": 0}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__
        if name.startswith(("conv2d", "convolution")):
            w = args[1]
            self.counts["conv"] += out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        elif name.startswith("linear"):
            self.counts["linear"] += out.numel() * args[1].shape[1]
        elif "batch_norm" in name:
            self.counts["bn"] += out.numel()
        elif name.split(".")[0] in ("relu", "silu", "sigmoid", "hardtanh"):  # hardtanh: ReLU6
            self.counts["act"] += out.numel()
        elif name.startswith(("mean", "adaptive_avg_pool2d")):
            self.counts["other"] += args[0].numel()
        elif name.startswith(("mul.", "add.")) and out.dim() == 4:
            self.counts["other"] += out.numel()
        return out


@pytest.mark.parametrize(
    ("name", "kernels"),
    [
        ("mixnet_s", None),
        ("mixnet_m", None),
        ("mixnet_l", None),
        ("mixnet_xl", None),
        ("tf_mixnet_s", None),
        ("mobilenet_v1", None),
        ("mobilenet_v2", None),
        ("mobilenet_v1", "k3.5.7-exp"),
        ("mobilenet_v2", "k3.5.7.9-dil"),
        ("mobilenet_v2", "k9"),
    ],
)
def test_complexity_equals_counted_forward(name, kernels):
    model = mixnet.create_model(name, kernels=kernels).eval()
    counter = OpCounter()
    with torch.inference_mode(), counter:
        model(torch.randn(1, 3, 224, 224))
    assert dict(complexity(model).by_kind) == counter.counts
    assert complexity(model).params == sum(p.numel() for p in model.parameters())
    if name in PAPER_MACS and kernels is None:
        assert abs(complexity(name).macs / PAPER_MACS[name] - 1) < 0.05


def test_complexity_follows_model_head_and_size():
    model = mixnet.create_model("mixnet_s", num_classes=10, in_chans=1)
    c = complexity(model, img_size=(64, 96))
    assert c.params == sum(p.numel() for p in model.parameters())
    assert c.macs < complexity("mixnet_s", 224).macs / 4


def test_unknown_name_and_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown model 'mixnet_q'.*mixnet_s"):
        mixnet.create_model("mixnet_q")
    with pytest.raises(TypeError, match="drop_connect"):
        mixnet.create_model("mixnet_s", drop_connect=0.2)
    with pytest.raises(ValueError, match="drop_rate"):
        mixnet.create_model("mixnet_s", drop_rate=1.5)
    with pytest.raises(ValueError, match="out_indices"):
        mixnet.create_model("mixnet_s", features_only=True, out_indices=(5,))


def test_models_built_later_are_unchanged():
    first = sum(p.numel() for p in mixnet.create_model("mixnet_m").parameters())
    mixnet.create_model("mixnet_l", width_mult=2.0, padding="same")
    mixnet.create_model("mixnet_xl")
    assert sum(p.numel() for p in mixnet.create_model("mixnet_m").parameters()) == first == PARAMS["mixnet_m"]
    assert mixnet.create_model("mixnet_m").config.padding == "symmetric"


def test_tf_variants_use_same_padding_and_tf_eps():
    model = mixnet.create_model("tf_mixnet_s")
    assert model.stem.bn.eps == 1e-3 and model.config.padding == "same"
    assert mixnet.create_model("mixnet_s").stem.bn.eps == 1e-5


def test_custom_block_strings():
    config = mixnet.MixNetConfig.from_strings(
        [["r1_k3_a1_p1_s11_e1_i8_o8"], ["r2_k3.5_a1.1_p1.1_s22_e4_i8_o16_se0.25_sw"]],
        stem_channels=8,
        head_channels=64,
    )
    model = mixnet.MixNet(config, num_classes=3).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    assert complexity(model, 32).params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["mixnet_m", "tf_mixnet_s"])
def test_fused_mixconv_model_trains_like_the_split_one(name):
    split = mixnet.create_model(name, num_classes=4, drop_rate=0.0).double().train()
    fused = mixnet.create_model(name, num_classes=4, drop_rate=0.0, fuse_mixconv=True).double().train()
    fused.load_state_dict(split.state_dict())
    x = torch.randn(2, 3, 65, 65, dtype=torch.float64)
    a, b = split(x), fused(x)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    a.sum().backward()
    b.sum().backward()
    ga = dict(split.named_parameters())
    for n, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, ga[n].grad, rtol=1e-7, atol=1e-9, msg=n)

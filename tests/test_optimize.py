"""optimize_for_inference and the rewrites of mixnet.deploy.fuse: same outputs as the original model."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_bn, tiny_config
from torch import nn

import mixnet
from mixnet.deploy import fuse
from mixnet.deploy.optimize import InferenceMixNet, optimize_for_inference
from mixnet.layers import MixConv2d

TOL = 1e-4


def _perturbed(model: nn.Module) -> nn.Module:
    """BN moved off identity at random at the TF init's output scale (~1), where a 1e-4 check is meaningful.

    Statistics calibrated on data (``_calibrate_bn``) give a random network logits of 20-30, where the
    float32 original itself is 4e-4 away from its own float64 result; the float64 test covers that case.
    """
    return randomize_bn(model, seed=2, spread=0.2, var_range=(0.8, 1.2)).eval()


def _calibrate_bn(model: nn.Module, size: int = 64, spread: float = 0.2) -> nn.Module:
    """Random BN affine params and running statistics measured on random images, as in a trained net.

    Statistics from data keep activations at a trained network's scale (raw random statistics blow
    logits up to hundreds, where float32 rounding alone exceeds 1e-4), and make folding non-trivial.
    """
    g = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.weight.data.copy_(1 + spread * (2 * torch.rand(m.num_features, generator=g) - 1))
        m.bias.data.copy_(spread * (2 * torch.rand(m.num_features, generator=g) - 1))
        m.momentum = None  # cumulative average over the calibration batch
        m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, size, size, generator=g, dtype=bns[0].weight.dtype))
    return model.eval()


@pytest.mark.parametrize("name", mixnet.list_models())
def test_optimized_equals_original_for_every_model(name):
    model = _perturbed(mixnet.create_model(name))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    for kwargs in (
        {},  # channels_last, every MixConv fused, pointwise merged by the rule
        {"channels_last": False, "img_size": 64, "merge_pointwise": "dense"},  # NCHW rule, static padding
    ):
        opt = optimize_for_inference(model, **kwargs)
        with torch.no_grad():
            out = opt(x)
        assert (out - ref).abs().max().item() <= TOL, (name, kwargs)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in opt.modules())
    assert ref.abs().max() > 0.1  # the comparison is not between near-zero outputs


@pytest.mark.parametrize(("name", "size"), [("mixnet_m", 64), ("tf_mixnet_l", 64), ("tf_mixnet_l", 67)])
def test_rewrite_is_exact_in_float64(name, size):
    # In float64 the rewrite must agree to ~1e-12 even with far-from-identity BN: it is the same math,
    # and any misplaced kernel tap or padding offset would show up as an O(1) difference. 67 is odd at
    # every stride-2 layer's input (67, 34, 17, 9): the asymmetric TF SAME cases.
    model = _calibrate_bn(mixnet.create_model(name).double(), size, spread=0.5)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        for kwargs in (
            {"img_size": size},
            {"channels_last": False, "fuse_depthwise": True, "merge_pointwise": "dense"},
        ):
            opt = optimize_for_inference(model, **kwargs)
            # Every tensor the rewrite creates follows the source weights' dtype.
            assert {p.dtype for p in opt.parameters()} == {torch.float64}
            out = opt(x)
            assert out.dtype == torch.float64
            assert (out - ref).abs().max() <= 1e-9 * ref.abs().max(), kwargs


@pytest.mark.parametrize("size", [97, 112])
def test_optimized_tf_same_padding_odd_and_even_sizes(size):
    model = _calibrate_bn(mixnet.create_model("tf_mixnet_s"), size)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        for kwargs in (
            {"img_size": size},  # static constant pads
            {"fuse_depthwise": True},  # dynamic SAME padding on the fused kernels
            {"fuse_depthwise": False, "merge_pointwise": "split", "channels_last": False, "img_size": size},
        ):
            out = optimize_for_inference(model, **kwargs)(x)
            assert (out - ref).abs().max() <= TOL, kwargs


def test_plan_uses_fused_kernels_and_merged_pointwise():
    opt = optimize_for_inference(mixnet.create_model("mixnet_s"))
    assert isinstance(opt, InferenceMixNet) and opt.channels_last
    choices = opt.plan.choices
    assert choices["stages.5.0.dw_conv"] == "fused k11"  # 3.5.7.9.11 -> one 11x11 depthwise conv
    assert set(choices.values()) <= {"single k3", "fused k5", "fused k7", "fused k9", "fused k11", "dense", "grouped"}
    assert not any(isinstance(m, (MixConv2d, fuse.SplitConcat)) for m in opt.modules())
    nchw = optimize_for_inference(mixnet.create_model("mixnet_s"), channels_last=False)
    assert nchw.plan.choices["stages.2.0.dw_conv"] == "split"  # 56x56 input: split is faster in NCHW
    assert nchw.plan.choices["stages.5.0.dw_conv"] == "fused k11"  # 14x14 input


def test_original_model_untouched():
    model = mixnet.create_model("mixnet_m").train()
    before = copy.deepcopy(model.state_dict())
    optimize_for_inference(model, img_size=64)
    assert model.training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_static_same_padding_rejects_other_input_sizes():
    model = _perturbed(mixnet.create_model("tf_mixnet_s"))
    opt = optimize_for_inference(model, img_size=64)
    assert opt.fixed_size == (64, 64) and "stem.conv" in opt.plan.static_same_layers
    for size in (72, 65):
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            # Why the check exists: the constant pads of 64px give the right shape but wrong values.
            assert (opt.model(x) - model(x)).abs().max() > 1e-3
        with pytest.raises(ValueError, match=rf"for 64x64 inputs but got {size}x{size}; re-optimize"):
            opt(x)
    # Without img_size the padding stays dynamic and any size works.
    dynamic = optimize_for_inference(model)
    assert dynamic.fixed_size is None and not dynamic.plan.static_same_layers
    with torch.no_grad():
        x = torch.randn(1, 3, 65, 65)
        assert (dynamic(x) - model(x)).abs().max() <= TOL


def test_symmetric_padding_model_keeps_any_input_size():
    # mixnet_s has no TF SAME convs: img_size only steers the rules, so other sizes stay exact.
    model = _perturbed(mixnet.create_model("mixnet_s"))
    opt = optimize_for_inference(model, img_size=64)
    assert opt.fixed_size is None and opt.plan.static_padding
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        assert (opt(x) - model(x)).abs().max() <= TOL


def test_follows_the_model_device():
    # The meta device stands in for CUDA: any tensor created on the CPU (the probe input, a new conv's
    # weight) would meet the model's tensors on another device and fail, or leave a CPU parameter.
    model = mixnet.create_model("tf_mixnet_s").to("meta")
    for kwargs in ({"img_size": 64}, {"channels_last": False, "merge_pointwise": "dense"}):
        opt = optimize_for_inference(model, **kwargs)
        assert {t.device.type for t in [*opt.parameters(), *opt.buffers()]} == {"meta"}
    mix = MixConv2d(13, 13, [3, 5, 7], stride=2, padding="same").to("meta", torch.float64)
    for new in (fuse.fuse_depthwise(list(mix.convs)), fuse.static_same(mix.convs[0], (15, 15))):
        assert new.weight.device.type == "meta" and new.weight.dtype == torch.float64
    pw = MixConv2d(15, 21, [1, 1], depthwise=False).to("meta", torch.float64)
    for mode in ("dense", "split"):
        merged = fuse.merge_pointwise(list(pw.convs), pw.in_splits, mode)
        assert {(p.device.type, p.dtype) for p in merged.parameters()} == {("meta", torch.float64)}


@pytest.mark.parametrize(("name", "out_indices"), [("mixnet_s", (0, 1)), ("tf_mixnet_s", (1, 3))])
def test_features_only_with_partial_out_indices(name, out_indices):
    model = _perturbed(mixnet.create_model(name, features_only=True, out_indices=out_indices))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        for kwargs in ({}, {"img_size": 64, "channels_last": False}):
            opt = optimize_for_inference(model, **kwargs)
            out = opt(x)
            assert len(out) == len(ref) == len(out_indices)
            assert all((o - r).abs().max() <= TOL for o, r in zip(out, ref, strict=True)), kwargs
    # The blocks after the last tap never run: dropped, rather than kept with BN and split convs.
    last = model.feature_info[-1]
    assert len(opt.model.stages) == last["stage"] + 1 and len(opt.model.stages[-1]) == last["block"] + 1
    assert not any(isinstance(m, (nn.BatchNorm2d, MixConv2d)) for m in opt.modules())


def test_features_only_model():
    model = _perturbed(mixnet.create_model("tf_mixnet_m", features_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = optimize_for_inference(model, img_size=64)(x)
    assert len(out) == len(ref) == 5
    assert all((o - r).abs().max() <= TOL for o, r in zip(out, ref, strict=True))


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("size", [14, 15])
@pytest.mark.parametrize("channels", [12, 13])  # 13: unequal groups (4, 3, 3, 3)
def test_fused_depthwise_matches_split_convs(stride, padding, size, channels):
    # Independent reference: each group convolved with F.conv2d and F.pad written out here.
    mix = MixConv2d(channels, channels, [3, 5, 7, 9], stride=stride, padding=padding).eval()
    x = torch.randn(2, channels, size, size)
    fused = fuse.fuse_depthwise(list(mix.convs))
    refs = []
    for conv, part in zip(mix.convs, torch.split(x, mix.in_splits, 1), strict=True):
        k = conv.kernel_size[0]
        if padding == "same":
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            part = F.pad(part, (total // 2, total - total // 2, total // 2, total - total // 2))
            refs.append(F.conv2d(part, conv.weight, None, stride, 0, 1, part.shape[1]))
        else:
            refs.append(F.conv2d(part, conv.weight, None, stride, k // 2, 1, part.shape[1]))
    ref = torch.cat(refs, 1)
    with torch.no_grad():
        assert (mix(x) - ref).abs().max() <= 1e-5
        assert (fused(x) - ref).abs().max() <= 1e-5
        static = fuse.static_same(fused, (size, size))
        assert (static(x) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("size", [14, 15])
def test_one_by_one_kernel_fuses_only_where_exact(padding, size):
    # A 1x1 group at stride 2: TF SAME's total (ceil(n/2) - 1) * 2 + 1 - n is -1 for even n, clamped to
    # 0, so centering it in the 3x3 would read one pixel off; symmetric padding stays exact.
    mix = MixConv2d(8, 8, [1, 3], stride=2, padding=padding).eval()
    assert fuse.can_fuse_depthwise(list(mix.convs)) == (padding == "symmetric")
    x = torch.randn(1, 8, size, size)
    with torch.no_grad():
        if padding == "symmetric":
            assert (fuse.fuse_depthwise(list(mix.convs))(x) - mix(x)).abs().max() <= 1e-5
        else:
            with pytest.raises(ValueError, match="cannot be fused"):
                fuse.fuse_depthwise(list(mix.convs))


@pytest.mark.parametrize("mode", ["split", "grouped", "dense"])
def test_merge_pointwise(mode):
    mix = MixConv2d(16, 48, [1, 1], depthwise=False).eval()
    x = torch.randn(2, 16, 5, 5)
    merged = fuse.merge_pointwise(list(mix.convs), mix.in_splits, mode)
    with torch.no_grad():
        assert (merged(x) - mix(x)).abs().max() <= 1e-5


def test_merge_pointwise_with_unequal_splits():
    mix = MixConv2d(15, 21, [1, 1], depthwise=False).eval()  # 8, 7 -> 11, 10
    x = torch.randn(2, 15, 5, 5)
    with torch.no_grad():
        for mode in ("split", "dense"):
            assert (fuse.merge_pointwise(list(mix.convs), mix.in_splits, mode)(x) - mix(x)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match=r"equal channel splits, got in \[8, 7\] -> out \[11, 10\]"):
        fuse.merge_pointwise(list(mix.convs), mix.in_splits, "grouped")


def test_forced_grouped_merge_with_unequal_splits_raises():
    # Widths are rounded to multiples of 8, so two groups always split equally; three do not: the
    # expand conv's 16 inputs split 6/5/5 (-> 16/16/16).
    config = mixnet.MixNetConfig.from_strings(
        [["r1_k3_a1_p1_s11_e1_i16_o16"], ["r1_k3.5_a1.1.1_p1.1.1_s22_e3_i16_o24_se0.25_sw"]],
        stem_channels=16,
        head_channels=32,
    )
    model = _perturbed(mixnet.MixNet(config, num_classes=10))
    with pytest.raises(ValueError, match=r"'grouped' needs equal channel splits, but stages.1.0.expand_conv"):
        optimize_for_inference(model, merge_pointwise="grouped")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        for mode in ("auto", "dense"):
            opt = optimize_for_inference(model, merge_pointwise=mode)
            assert opt.plan.choices["stages.1.0.expand_conv"] == "dense"
            assert (opt(x) - ref).abs().max() <= TOL


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="MixNet"):
        optimize_for_inference(nn.Conv2d(3, 3, 1))
    model = mixnet.create_model("mixnet_s")
    with pytest.raises(ValueError, match="fuse_depthwise"):
        optimize_for_inference(model, fuse_depthwise="yes")
    with pytest.raises(ValueError, match="merge_pointwise"):
        optimize_for_inference(model, merge_pointwise="diagonal")
    mix = MixConv2d(8, 12, [1, 1, 1], depthwise=False, split="exponential")  # 4, 2, 2 -> 6, 3, 3
    with pytest.raises(ValueError, match="needs equal channel splits"):
        fuse.merge_pointwise(list(mix.convs), mix.in_splits, "grouped")
    dilated = MixConv2d(8, 8, [3, 5], dilated=True)
    assert not fuse.can_fuse_depthwise(list(dilated.convs))
    with pytest.raises(ValueError, match="cannot be fused"):
        fuse.fuse_depthwise(list(dilated.convs))


@pytest.mark.slow
def test_torch_compile_option():
    # A tiny MixNet keeps the compile time short; the point is that compile=True runs and agrees.
    model = _calibrate_bn(mixnet.MixNet(tiny_config(16, 64), num_classes=10))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = optimize_for_inference(model, compile=True)(x)
        assert (out - model(x)).abs().max() <= TOL

"""MixConv2d against explicit per-group convolutions built by hand."""

import pytest
import torch
import torch.nn.functional as F

from mixnet.layers import MixConv2d, SameConv2d, same_pad_amounts, split_channels


def reference_mixconv(x, conv: MixConv2d, kernels, splits, stride, dilations, pads):
    """Plain PyTorch: slice the channels, F.conv2d each slice with its kernel, concatenate."""
    outs, start = [], 0
    for c, w_conv, d, p in zip(splits, conv.convs, dilations, pads, strict=True):
        xs = F.pad(x[:, start : start + c], p)
        outs.append(F.conv2d(xs, w_conv.weight, None, stride, 0, d, groups=c))
        start += c
    return torch.cat(outs, 1)


def test_equal_split_remainder_goes_first():
    assert split_channels(10, 3) == [4, 3, 3]
    assert split_channels(32, 4) == [8, 8, 8, 8]
    assert split_channels(7, 1) == [7]


def test_exponential_split_matches_paper():
    assert split_channels(32, 4, "exponential") == [16, 8, 4, 4]
    assert split_channels(24, 3, "exponential") == [12, 6, 6]
    with pytest.raises(ValueError, match="cannot split"):
        split_channels(4, 4, "exponential")
    with pytest.raises(ValueError, match="split must be"):
        split_channels(4, 2, "fibonacci")


@pytest.mark.parametrize("split", ["equal", "exponential"])
@pytest.mark.parametrize("stride", [1, 2])
def test_mixconv_equals_separate_depthwise_convs(split, stride):
    kernels = [3, 5, 7]
    conv = MixConv2d(22, 22, kernels, stride=stride, split=split)
    splits = split_channels(22, 3, split)
    assert conv.in_splits == splits
    x = torch.randn(2, 22, 17, 19)
    pads = [(k // 2,) * 4 for k in kernels]
    ref = reference_mixconv(x, conv, kernels, splits, stride, [1, 1, 1], pads)
    torch.testing.assert_close(conv(x), ref, rtol=0, atol=1e-5)


def test_dilated_alternative_uses_3x3_with_dilation():
    conv = MixConv2d(12, 12, [3, 5, 7, 9], dilated=True)
    assert [c.kernel_size for c in conv.convs] == [(3, 3)] * 4
    assert [c.dilation[0] for c in conv.convs] == [1, 2, 3, 4]
    x = torch.randn(1, 12, 15, 15)
    pads = [(d,) * 4 for d in (1, 2, 3, 4)]
    ref = reference_mixconv(x, conv, None, [3, 3, 3, 3], 1, [1, 2, 3, 4], pads)
    out = conv(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [16, 17])
def test_same_padding_puts_extra_pixel_bottom_right(size):
    kernels = [3, 5]
    conv = MixConv2d(8, 8, kernels, stride=2, padding="same")
    assert all(isinstance(c, SameConv2d) for c in conv.convs)
    x = torch.randn(1, 8, size, size)
    pads = []
    for k in kernels:
        total = max((-(-size // 2) - 1) * 2 + k - size, 0)  # TF: out = ceil(in / stride)
        pads.append((total // 2, total - total // 2, total // 2, total - total // 2))
    out = conv(x)
    assert out.shape[-1] == -(-size // 2)
    torch.testing.assert_close(out, reference_mixconv(x, conv, kernels, [4, 4], 2, [1, 1], pads), rtol=0, atol=1e-5)
    if size == 16:  # even input, stride 2, k=3: TF pads 0 on top/left and 1 on bottom/right
        assert same_pad_amounts(16, 3, 2) == (0, 1)


def test_grouped_pointwise_equals_separate_convs():
    conv = MixConv2d(10, 16, [1, 1], depthwise=False)
    assert conv.in_splits == [5, 5] and conv.out_splits == [8, 8]
    x = torch.randn(2, 10, 5, 5)
    ref = torch.cat([F.conv2d(x[:, :5], conv.convs[0].weight), F.conv2d(x[:, 5:], conv.convs[1].weight)], 1)
    torch.testing.assert_close(conv(x), ref, rtol=0, atol=1e-5)


def test_single_kernel_is_plain_depthwise():
    conv = MixConv2d(6, 6, 3)
    assert len(conv.convs) == 1 and conv.convs[0].groups == 6


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="in == out"):
        MixConv2d(4, 8, [3, 5])
    with pytest.raises(ValueError, match="padding must be"):
        MixConv2d(4, 4, [3], padding="valid")
    with pytest.raises(ValueError, match="kernel sizes"):
        MixConv2d(4, 4, [])


@pytest.mark.parametrize("padding", ["symmetric", "same"])
@pytest.mark.parametrize("stride, size", [(1, 15), (2, 16), (2, 17)])
def test_fused_mixconv_equals_split_in_outputs_and_gradients(padding, stride, size):
    """Uneven channels (13 in 4 groups), odd and even sizes: same outputs and group-weight gradients."""
    split = MixConv2d(13, 13, [3, 5, 7, 9], stride=stride, padding=padding).double()
    fused = MixConv2d(13, 13, [3, 5, 7, 9], stride=stride, padding=padding, fused=True).double()
    fused.load_state_dict(split.state_dict())
    x = torch.randn(2, 13, size, size + 2, dtype=torch.float64)
    a, b = split(x), fused(x)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(a)
    (a * g).sum().backward()
    (b * g).sum().backward()
    for cs, cf in zip(split.convs, fused.convs, strict=True):
        torch.testing.assert_close(cs.weight.grad, cf.weight.grad, rtol=1e-10, atol=1e-10)


def test_fused_needs_a_depthwise_mix_of_odd_kernels():
    with pytest.raises(ValueError, match="fused=True"):
        MixConv2d(8, 16, [1, 1], depthwise=False, fused=True)
    with pytest.raises(ValueError, match="fused=True"):
        MixConv2d(8, 8, [3, 5], dilated=True, fused=True)

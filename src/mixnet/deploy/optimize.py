"""``optimize_for_inference``: a fast, inference-only copy of a MixNet with the same outputs.

The split-conv-concat form of MixConv that every implementation uses is what makes MixNet slower
than EfficientNet-B0 despite fewer MACs. This module rewrites a copy of the model with the exact
transformations of :mod:`mixnet.deploy.fuse` (BN folded into convs, each MixConv as one depthwise conv with
centered zero-padded kernels, grouped 1x1 convs merged, static TF "SAME" padding) and runs it in
channels_last. Which rewrite is used where follows rules measured per layer on a 2-core x86 CPU with
``benchmarks/probes/layer_rules.py`` (table and discussion in docs/inference.md):

- depthwise MixConv: in channels_last the fused big kernel was 1.8-3.3x faster than split+cat for
  every MixConv of mixnet_s/m/l (kernels 3..11, 7..112 px) at batch 1 and 1.2-2.7x at batch 8; in
  NCHW it was faster up to 28x28 inputs but up to 3x slower at 56x56 (batch 8) and 112x112, so NCHW
  keeps the split form above 28x28.
- grouped 1x1 (``a1.1``/``p1.1``): one ``groups=2`` conv beat split+cat everywhere; a block-diagonal
  dense 1x1 (one GEMM, twice the MACs) beat it at batch 1 and 8 only when each group has at most 16
  input channels (at batch 1 up to about 52, but then lost at batch 8), so dense is used up to 16.

ONNX runtimes run convs in their own blocked layouts (ONNX Runtime's NCHWc, OpenVINO's nChw16c), not
PyTorch's NCHW: there, fusing every MixConv was as fast or faster than the NCHW rule for whole networks
(``benchmarks/probes/onnx_rules.py``, docs/bench/onnx_rules.md), so :func:`onnx_rewrite`, the module
:func:`mixnet.deploy.export.to_onnx` exports, fuses them all (``ONNX_FUSE_DEPTHWISE``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from mixnet.deploy import fuse
from mixnet.layers import MixConv2d, SameConv2d
from mixnet.models.mixnet import MixNetTrunk

# Rules read off the per-layer measurements (see the module docstring).
NCHW_FUSE_MAX_PIXELS = 28 * 28
DENSE_MAX_GROUP_IN = 16
ONNX_FUSE_DEPTHWISE = True

FuseChoice = Literal["auto"] | bool
MergeChoice = Literal["auto", "split", "grouped", "dense"]


def prefer_fused_depthwise(in_hw: tuple[int, int], channels_last: bool) -> bool:
    """The measured rule: fuse a MixConv into one big-kernel depthwise conv for this input size?"""
    return channels_last or in_hw[0] * in_hw[1] <= NCHW_FUSE_MAX_PIXELS


def preferred_pointwise_merge(in_splits: list[int], out_splits: list[int]) -> fuse.PointwiseMerge:
    """The measured rule for grouped 1x1 convs: ``dense`` for narrow groups, else ``grouped``."""
    if max(in_splits) <= DENSE_MAX_GROUP_IN:
        return "dense"
    return "grouped" if len(set(in_splits)) == 1 and len(set(out_splits)) == 1 else "dense"


@dataclass
class Plan:
    """What :func:`optimize_for_inference` did to each layer (for reports and benchmarks).

    Attributes:
        choices: layer name -> the rewrite used (``fused k7``, ``split``, ``dense``, ``grouped``, ...).
        static_padding: whether TF "SAME" padding was made static for ``img_size``.
        static_same_layers: the layers whose size-dependent TF "SAME" padding became constant pads;
            when any exist, the model is only correct at ``img_size`` and checks its input size.
    """

    choices: dict[str, str] = field(default_factory=dict)
    static_padding: bool = False
    static_same_layers: list[str] = field(default_factory=list)


class InferenceMixNet(nn.Module):
    """A rewritten MixNet for inference; takes NCHW input like the original and returns the same outputs.

    Attributes:
        model: the rewritten network (convs with folded BN; no BatchNorm left).
        channels_last: whether weights and the input are converted to channels_last.
        img_size: the input size static padding was computed for (None: padding stays dynamic).
        plan: the rewrite chosen for each layer.
        fixed_size: ``(img_size, img_size)`` when some TF "SAME" padding was made static, so that any
            other input size would give wrong outputs of the right shape; None when any size works.
    """

    def __init__(self, model: nn.Module, *, channels_last: bool, img_size: int | None, plan: Plan) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.img_size = img_size
        self.plan = plan
        self.fixed_size = (img_size, img_size) if img_size is not None and plan.static_same_layers else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Runs the network (converting the input to channels_last first when enabled).

        Raises:
            ValueError: the model has static SAME padding and ``x`` is not ``img_size`` x ``img_size``.
        """
        # The check compares Python ints: torch.export/dynamo (and so the ONNX exporter) see static
        # spatial sizes and record no op for it; torch.jit.trace would record nothing useful, so skip it.
        if self.fixed_size is not None and not torch.jit.is_tracing() and tuple(x.shape[-2:]) != self.fixed_size:
            raise ValueError(
                f"this model was optimized with static TF 'SAME' padding for {self.fixed_size[0]}x"
                f"{self.fixed_size[1]} inputs but got {x.shape[-2]}x{x.shape[-1]}; re-optimize with "
                f"img_size={x.shape[-2]} (square inputs) or omit img_size to keep the padding dynamic"
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


def _input_sizes(model: MixNetTrunk, img_size: int) -> dict[str, tuple[int, int]]:
    """Spatial input size of every conv and MixConv that runs, from one forward pass at ``img_size``."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, n=name: sizes.__setitem__(n, tuple(inp[0].shape[-2:])))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, MixConv2d))
    ]
    w = model.stem.conv.weight  # probe on the model's device and dtype (a CUDA model, a float64 model)
    try:
        with torch.no_grad():
            model(torch.zeros(1, w.shape[1], img_size, img_size, dtype=w.dtype, device=w.device))
    finally:
        for h in hooks:
            h.remove()
    return sizes


def optimize_for_inference(
    model: MixNetTrunk,
    *,
    img_size: int | None = None,
    channels_last: bool = True,
    fuse_depthwise: FuseChoice = "auto",
    merge_pointwise: MergeChoice = "auto",
    compile: bool = False,
) -> nn.Module:
    """An inference-only copy of ``model`` with the same outputs (within float rounding), faster on CPU.

    The original model is left untouched. BatchNorm is folded into the convs; MixConvs become one
    depthwise conv with zero-padded centered kernels where that is faster; grouped 1x1 convs are
    merged; dropout and stochastic depth are dropped (eval semantics).

    Args:
        model: a :class:`mixnet.MixNet` or :class:`mixnet.MixNetFeatures`.
        img_size: the input resolution the model will see. With it, TF "SAME" padding becomes static
            (constant pads, what ONNX export wants) and the per-layer rules use the true sizes. When
            that makes any padding static (``tf_`` models), the result only accepts
            ``img_size`` x ``img_size`` inputs and raises ValueError for others. Without it the
            rules assume 224, SAME padding stays dynamic and any input size works.
        channels_last: run in channels_last memory format (faster on x86 CPUs with oneDNN).
        fuse_depthwise: ``auto`` (the measured rule), True (always fuse) or False (keep split).
        merge_pointwise: ``auto`` (the measured rule, dense where splits are unequal), or force
            ``split``/``grouped``/``dense``; a forced ``grouped`` raises ValueError for a layer
            whose channel splits are unequal (one grouped conv cannot express it).
        compile: wrap the result in ``torch.compile`` (needs a C++ compiler for the CPU backend).

    Returns:
        An :class:`InferenceMixNet` in eval mode (wrapped by ``torch.compile`` when asked).

    Raises:
        TypeError: ``model`` is not a MixNet.
        ValueError: a bad option value, or ``grouped`` forced on a layer with unequal splits.
    """
    if not isinstance(model, MixNetTrunk):
        raise TypeError(f"optimize_for_inference needs a mixnet MixNet or MixNetFeatures, got {type(model).__name__}")
    if fuse_depthwise not in ("auto", True, False):
        raise ValueError(f"fuse_depthwise must be 'auto', True or False, got {fuse_depthwise!r}")
    if merge_pointwise not in ("auto", "split", "grouped", "dense"):
        raise ValueError(f"merge_pointwise must be 'auto', 'split', 'grouped' or 'dense', got {merge_pointwise!r}")
    if img_size is not None and img_size < 8:
        raise ValueError(f"img_size must be at least 8, got {img_size}")
    net = copy.deepcopy(model).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    sizes = _input_sizes(net, img_size or 224)
    static = img_size is not None
    plan = Plan(static_padding=static)

    def make_static(name: str, conv: nn.Conv2d) -> nn.Conv2d:
        if not static:
            return conv
        if isinstance(conv, SameConv2d) and name not in plan.static_same_layers:
            plan.static_same_layers.append(name)
        return fuse.static_same(conv, sizes[name])

    def single(name: str, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
        return make_static(name, fuse.fold_bn(conv, *fuse.bn_scale_shift(bn)))

    def depthwise(name: str, mix: MixConv2d, bn: nn.BatchNorm2d) -> nn.Module:
        convs = fuse.fold_bn_into_groups(list(mix.convs), bn)
        if len(convs) == 1:
            plan.choices[name] = f"single k{mix.kernel_sizes[0]}"
            return make_static(name, convs[0])
        want = prefer_fused_depthwise(sizes[name], channels_last) if fuse_depthwise == "auto" else fuse_depthwise
        if want and fuse.can_fuse_depthwise(convs):
            plan.choices[name] = f"fused k{max(mix.kernel_sizes)}"
            return make_static(name, fuse.fuse_depthwise(convs))
        plan.choices[name] = "split"
        return fuse.SplitConcat([make_static(name, c) for c in convs], mix.in_splits)

    def pointwise(name: str, mix: MixConv2d, bn: nn.BatchNorm2d) -> nn.Module:
        convs = fuse.fold_bn_into_groups(list(mix.convs), bn)
        if len(convs) == 1:
            return convs[0]
        mode = (
            preferred_pointwise_merge(mix.in_splits, mix.out_splits) if merge_pointwise == "auto" else merge_pointwise
        )
        if mode == "grouped" and (len(set(mix.in_splits)) > 1 or len(set(mix.out_splits)) > 1):
            raise ValueError(
                f"merge_pointwise='grouped' needs equal channel splits, but {name} splits "
                f"{mix.in_splits} -> {mix.out_splits}; use 'auto' (dense there) or 'dense'"
            )
        plan.choices[name] = mode
        return fuse.merge_pointwise(convs, mix.in_splits, mode)

    net.stem.conv = single("stem.conv", net.stem.conv, net.stem.bn)
    net.stem.bn = nn.Identity()
    for s, stage in enumerate(net.stages):
        for b, block in enumerate(stage):
            prefix = f"stages.{s}.{b}"
            if block.has_expand:
                block.expand_conv = pointwise(f"{prefix}.expand_conv", block.expand_conv, block.expand_bn)
                block.expand_bn = nn.Identity()
            block.dw_conv = depthwise(f"{prefix}.dw_conv", block.dw_conv, block.dw_bn)
            block.dw_bn = nn.Identity()
            block.project_conv = pointwise(f"{prefix}.project_conv", block.project_conv, block.project_bn)
            block.project_bn = nn.Identity()
            block.drop_path = nn.Identity()
    if not net.features_only:
        if isinstance(net.head, nn.Sequential):  # an nn.Identity without head conv (MobileNetV1)
            net.head.conv = single("head.conv", net.head.conv, net.head.bn)
            net.head.bn = nn.Identity()
        net.dropout = nn.Identity()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    out: nn.Module = InferenceMixNet(net, channels_last=channels_last, img_size=img_size, plan=plan).eval()
    return torch.compile(out) if compile else out


def onnx_rewrite(model: MixNetTrunk, *, img_size: int) -> nn.Module:
    """The rewrite exported to ONNX: NCHW (the runtimes choose their own layout), static padding for
    ``img_size``, every MixConv fused (``ONNX_FUSE_DEPTHWISE``, measured in ONNX Runtime and OpenVINO)."""
    return optimize_for_inference(model, img_size=img_size, channels_last=False, fuse_depthwise=ONNX_FUSE_DEPTHWISE)

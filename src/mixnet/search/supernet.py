"""The weight-sharing supernet of the search space: every architecture is a path through it.

Each block holds the largest weights any choice needs, and a choice uses a part of them:

- depthwise: one ``kmax x kmax`` kernel per channel (the Single-Path NAS "superkernel", Stamoulis et al.
  2019). A MixConv with groups ``3, 5, ..., k`` gives channel group ``g`` the centered ``k_g x k_g`` part of
  its channels' superkernels, so all kernel choices share weights; the result is computed as ONE depthwise
  conv with the other taps masked to zero, exactly the fused MixConv of :class:`mixnet.MixConv2d`;
- expansion ratio: the first ``in x e`` channels of the expansion conv, its BN and everything after (a
  channel mask);
- 1x1 convs in 2 groups: the block-diagonal part of the dense weight;
- squeeze-excite: the first ``in x ratio`` channels of its bottleneck;
- expansion 1 (no expansion conv): the depthwise, SE and projection weights and their BNs are the block's
  own (:class:`_Tail`), not the first ``in`` channels of the expanded paths' weights. Those channels carry
  an expanded path's features most of the time, and an expansion-1 path feeding them the block's input
  instead would rank by weights trained for another input (the few-shot idea of Zhao et al. 2021, applied
  to the one choice that changes what the depthwise conv sees).

:meth:`SuperNet.extract` copies a path's weights out into an ordinary :class:`mixnet.MixNet` that computes
the same function (tested), which is how candidates are evaluated (after BN recalibration) and how a
found net can be fine-tuned.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mixnet.layers.mixconv import split_channels
from mixnet.models.mixnet import MixNet, activation_layer, conv_bn_act
from mixnet.search.space import Arch, BlockChoice, SearchSpace, Slot


def _offsets(sizes: list[int]) -> list[int]:
    out = [0]
    for s in sizes:
        out.append(out[-1] + s)
    return out


def group_mask(c_out: int, c_in: int, groups: int, device=None) -> torch.Tensor | None:
    """The block-diagonal (c_out, c_in, 1, 1) mask of a 1x1 conv in ``groups`` groups (None for 1 group)."""
    if groups == 1:
        return None
    mask = torch.zeros(c_out, c_in, 1, 1, device=device)
    o, i = _offsets(split_channels(c_out, groups)), _offsets(split_channels(c_in, groups))
    for g in range(groups):
        mask[o[g] : o[g + 1], i[g] : i[g + 1]] = 1
    return mask


def kernel_mask(channels: int, kernels: tuple[int, ...], kmax: int, device=None) -> torch.Tensor:
    """The (channels, 1, kmax, kmax) mask that keeps each equal channel group's centered kernel."""
    mask = torch.zeros(channels, 1, kmax, kmax, device=device)
    o = _offsets(split_channels(channels, len(kernels)))
    for g, k in enumerate(kernels):
        p = (kmax - k) // 2
        mask[o[g] : o[g + 1], :, p : p + k, p : p + k] = 1
    return mask


class _Tail(nn.Module):
    """The depthwise, squeeze-excite and projection weights of a block for inputs up to ``width`` channels."""

    def __init__(self, width: int, c_out: int, kmax: int, se_max: int, bn) -> None:
        super().__init__()
        self.dw_w = nn.Parameter(torch.empty(width, 1, kmax, kmax))
        self.dw_bn = bn(width)
        if se_max:
            self.se_reduce_w = nn.Parameter(torch.empty(se_max, width, 1, 1))
            self.se_reduce_b = nn.Parameter(torch.zeros(se_max))
            self.se_expand_w = nn.Parameter(torch.empty(width, se_max, 1, 1))
            self.se_expand_b = nn.Parameter(torch.zeros(width))
            nn.init.normal_(self.se_reduce_w, 0.0, math.sqrt(2.0 / se_max))
            nn.init.normal_(self.se_expand_w, 0.0, math.sqrt(2.0 / width))
        self.project_w = nn.Parameter(torch.empty(c_out, width, 1, 1))
        self.project_bn = bn(c_out)
        nn.init.normal_(self.dw_w, 0.0, math.sqrt(2.0 / (kmax * kmax)))
        nn.init.normal_(self.project_w, 0.0, math.sqrt(2.0 / c_out))


class SuperBlock(nn.Module):
    """One block position with the weights of every choice (see the module docstring)."""

    def __init__(self, slot: Slot, space: SearchSpace, bn_eps: float, bn_momentum: float) -> None:
        super().__init__()
        self.slot = slot
        c_in, c_out = slot.in_channels, slot.out_channels
        expanded = [e for e in space.expansions if e != 1]
        self.mid_max = int(c_in * max(expanded)) if expanded else c_in
        self.kmax = max(max(k) for k in space.kernels)
        ratios = [r for r in space.se_ratios if r]
        self.se_max = max(1, int(c_in * max(ratios))) if ratios else 0

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)

        self.expand_w = nn.Parameter(torch.empty(self.mid_max, c_in, 1, 1)) if expanded else None
        self.expand_bn = bn(self.mid_max) if expanded else None
        if expanded:
            nn.init.normal_(self.expand_w, 0.0, math.sqrt(2.0 / self.mid_max))
        self.tail = _Tail(self.mid_max, c_out, self.kmax, self.se_max, bn) if expanded else None
        self.tail_e1 = _Tail(c_in, c_out, self.kmax, self.se_max, bn) if 1 in space.expansions else None
        self.has_skip = slot.stride == 1 and c_in == c_out

    def _bn(self, x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
        # Slices of the running statistics are views: batch_norm updates the shared buffers in place.
        return F.batch_norm(
            x,
            bn.running_mean[:c],
            bn.running_var[:c],
            bn.weight[:c],
            bn.bias[:c],
            self.training,
            bn.momentum,
            bn.eps,
        )

    def tail_of(self, choice: BlockChoice) -> _Tail:
        """The weights after the expansion that ``choice`` uses: the expansion-1 paths' own, or the shared."""
        return self.tail_e1 if choice.expand == 1 else self.tail

    def forward(self, x: torch.Tensor, choice: BlockChoice, act: type[nn.Module]) -> torch.Tensor:
        """Runs the path ``choice`` (``act``: the base activation, used where the choice is not swish);
        :data:`~mixnet.search.space.SKIP` passes ``x`` through."""
        if choice.is_skip:
            return x
        a = F.silu if choice.swish else act()
        c_in, c_out = self.slot.in_channels, self.slot.out_channels
        shortcut = x
        mid = int(c_in * choice.expand)
        if choice.expand != 1:
            w = self.expand_w[:mid]
            mask = group_mask(mid, c_in, choice.expand_groups, w.device)
            x = a(self._bn(F.conv2d(x, w if mask is None else w * mask), self.expand_bn, mid))
        else:
            mid = c_in
        t = self.tail_of(choice)
        k = max(choice.kernels)
        p = (self.kmax - k) // 2
        w = t.dw_w[:mid, :, p : p + k, p : p + k]
        if len(choice.kernels) > 1:
            w = w * kernel_mask(mid, choice.kernels, k, w.device)
        x = F.conv2d(x, w, None, self.slot.stride, k // 2, 1, mid)
        x = a(self._bn(x, t.dw_bn, mid))
        if choice.se:
            se = max(1, int(c_in * choice.se))
            s = x.mean((2, 3), keepdim=True)
            s = a(F.conv2d(s, t.se_reduce_w[:se, :mid], t.se_reduce_b[:se]))
            s = F.conv2d(s, t.se_expand_w[:mid, :se], t.se_expand_b[:mid])
            x = x * s.sigmoid()
        w = t.project_w[:, :mid]
        mask = group_mask(c_out, mid, choice.project_groups, w.device)
        x = self._bn(F.conv2d(x, w if mask is None else w * mask), t.project_bn, c_out)
        return x + shortcut if self.has_skip else x

    def extract(self, choice: BlockChoice, prefix: str) -> dict[str, torch.Tensor]:
        """The weights of path ``choice`` in :class:`mixnet.models.mixnet.MixBlock`'s layout."""
        c_in, c_out = self.slot.in_channels, self.slot.out_channels
        out: dict[str, torch.Tensor] = {}

        def bn(name: str, module: nn.BatchNorm2d, c: int) -> None:
            for key in ("weight", "bias", "running_mean", "running_var"):
                out[f"{prefix}{name}.{key}"] = getattr(module, key)[:c].detach().clone()
            out[f"{prefix}{name}.num_batches_tracked"] = module.num_batches_tracked.detach().clone()

        def pointwise(name: str, w: torch.Tensor, c_o: int, c_i: int, groups: int) -> None:
            o, i = _offsets(split_channels(c_o, groups)), _offsets(split_channels(c_i, groups))
            for g in range(groups):
                out[f"{prefix}{name}.convs.{g}.weight"] = w[o[g] : o[g + 1], i[g] : i[g + 1]].detach().clone()

        mid = int(c_in * choice.expand)
        if choice.expand != 1:
            pointwise("expand_conv", self.expand_w[:mid], mid, c_in, choice.expand_groups)
            bn("expand_bn", self.expand_bn, mid)
        else:
            mid = c_in
        t = self.tail_of(choice)
        o = _offsets(split_channels(mid, len(choice.kernels)))
        for g, k in enumerate(choice.kernels):
            p = (self.kmax - k) // 2
            out[f"{prefix}dw_conv.convs.{g}.weight"] = t.dw_w[o[g] : o[g + 1], :, p : p + k, p : p + k].detach().clone()
        bn("dw_bn", t.dw_bn, mid)
        if choice.se:
            se = max(1, int(c_in * choice.se))
            out[f"{prefix}se.reduce.weight"] = t.se_reduce_w[:se, :mid].detach().clone()
            out[f"{prefix}se.reduce.bias"] = t.se_reduce_b[:se].detach().clone()
            out[f"{prefix}se.expand.weight"] = t.se_expand_w[:mid, :se].detach().clone()
            out[f"{prefix}se.expand.bias"] = t.se_expand_b[:mid].detach().clone()
        pointwise("project_conv", t.project_w[:, :mid], c_out, mid, choice.project_groups)
        bn("project_bn", t.project_bn, c_out)
        return out


class SuperNet(nn.Module):
    """The supernet of a :class:`SearchSpace`: the skeleton's stem and head around :class:`SuperBlock` s.

    Args:
        space: the search space (its skeleton must use symmetric padding).
        num_classes: classifier outputs.
        bn_eps, bn_momentum: BatchNorm settings of every layer.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int,
        *,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        base = space.base
        if base.padding != "symmetric":
            raise ValueError(
                f"the supernet needs a skeleton with symmetric padding, {space.skeleton} has {base.padding}"
            )
        self.space, self.num_classes = space, num_classes
        self.act = activation_layer(base.activation)
        self.stem = conv_bn_act(3, base.scaled_stem_channels, 3, 2, "symmetric", bn_eps, bn_momentum, base.activation)
        self.blocks = nn.ModuleList(SuperBlock(s, space, bn_eps, bn_momentum) for s in space.slots())
        last = space.slots()[-1].out_channels
        self.head = conv_bn_act(
            last, base.scaled_head_channels, 1, 1, "symmetric", bn_eps, bn_momentum, base.activation
        )
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(base.num_features, num_classes)
        self.bn_eps, self.bn_momentum = bn_eps, bn_momentum
        ref = MixNet(base, num_classes=num_classes)  # TF-style init of the stem, head and classifier
        self.stem.load_state_dict(ref.stem.state_dict())
        self.head.load_state_dict(ref.head.state_dict())
        # A zero classifier starts every path at uniform logits: TF's init on a 1536-wide head starts with
        # logits of std ~5, which a supernet switching paths every step does not recover from quickly.
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Logits of the path ``arch``."""
        x = self.stem(x)
        for block, choice in zip(self.blocks, arch, strict=True):
            x = block(x, choice, self.act)
        x = self.head(x).mean((2, 3))
        return self.classifier(self.dropout(x))

    def extract(self, arch: Arch) -> MixNet:
        """A standalone :class:`MixNet` of ``arch`` holding this supernet's weights (same outputs)."""
        config = self.space.config(arch).replace(bn_eps=self.bn_eps)
        net = MixNet(config, num_classes=self.num_classes, bn_momentum=self.bn_momentum)
        state = {f"stem.{k}": v.clone() for k, v in self.stem.state_dict().items()}
        state |= {f"head.{k}": v.clone() for k, v in self.head.state_dict().items()}
        state |= {f"classifier.{k}": v.clone() for k, v in self.classifier.state_dict().items()}
        starts = _offsets([len(s) for s in self.space.stage_slots()])
        kept = [0] * len(starts)  # blocks of each stage so far (left-out ones leave no block in the net)
        for i, (block, choice) in enumerate(zip(self.blocks, arch, strict=True)):
            stage = max(s for s in range(len(starts) - 1) if starts[s] <= i)
            if not choice.is_skip:
                state |= block.extract(choice, f"stages.{stage}.{kept[stage]}.")
                kept[stage] += 1
        net.load_state_dict(state)
        return net.to(self.classifier.weight.device)

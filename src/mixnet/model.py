"""The MixNet network, built from a :class:`mixnet.configs.MixNetConfig`.

Structure (paper figure 9; TF reference ``mixnet_model.py``): stem 3x3/2 conv -> BN -> ReLU, stages of
inverted-residual blocks with MixConv depthwise kernels, head 1x1 conv -> BN -> ReLU, global average
pool, dropout, linear classifier.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import StochasticDepth

from mixnet.arch import BlockArgs
from mixnet.configs import MixNetConfig
from mixnet.layers import MixConv2d, SqueezeExcite, create_conv2d
from mixnet.layers.padding import Padding


class MixBlock(nn.Module):
    """Inverted residual with MixConv: expand 1x1 -> MixConv -> SE -> project 1x1 (+ identity).

    The first MixNet block (expand ratio 1) has no expansion conv. Activations: ReLU, or swish for
    ``sw`` rows; the projection is linear. The skip is used when stride is 1 and widths match.
    """

    def __init__(
        self,
        args: BlockArgs,
        *,
        padding: Padding = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_path_rate: float = 0.0,
        fuse_mixconv: bool = False,
    ) -> None:
        super().__init__()
        mid = args.mid_channels
        act = nn.SiLU if args.swish else nn.ReLU

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)

        self.has_expand = args.expand_ratio != 1
        if self.has_expand:
            self.expand_conv = MixConv2d(args.in_channels, mid, [1] * args.expand_groups, depthwise=False)
            self.expand_bn = bn(mid)
            self.expand_act = act()
        self.dw_conv = MixConv2d(
            mid, mid, list(args.kernel_sizes), stride=args.stride, padding=padding, fused=fuse_mixconv
        )
        self.dw_bn = bn(mid)
        self.dw_act = act()
        self.se = SqueezeExcite(mid, args.se_channels, act) if args.se_ratio else nn.Identity()
        self.project_conv = MixConv2d(mid, args.out_channels, [1] * args.project_groups, depthwise=False)
        self.project_bn = bn(args.out_channels)
        self.has_skip = args.stride == 1 and args.in_channels == args.out_channels
        self.drop_path = StochasticDepth(drop_path_rate, "row") if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block."""
        shortcut = x
        if self.has_expand:
            x = self.expand_act(self.expand_bn(self.expand_conv(x)))
        x = self.dw_act(self.dw_bn(self.dw_conv(x)))
        x = self.se(x)
        x = self.project_bn(self.project_conv(x))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


def expand_rows(stage: tuple[BlockArgs, ...]) -> list[BlockArgs]:
    """Unrolls the rows of a stage into one BlockArgs per block (only the first of a row strides)."""
    blocks = []
    for row in stage:
        blocks.append(dataclasses.replace(row, repeats=1))
        rest = dataclasses.replace(row, repeats=1, stride=1, in_channels=row.out_channels)
        blocks.extend([rest] * (row.repeats - 1))
    return blocks


def conv_bn_relu(
    c_in: int, c_out: int, k: int, stride: int, padding: Padding, bn_eps: float, bn_momentum: float
) -> nn.Sequential:
    """The stem and head layer: conv -> BN -> ReLU, as ``conv``, ``bn``, ``act``."""
    return nn.Sequential(
        OrderedDict(
            conv=create_conv2d(c_in, c_out, k, stride=stride, padding=padding),
            bn=nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum),
            act=nn.ReLU(),
        )
    )


class MixNet(nn.Module):
    """A MixNet classifier, or a multi-scale feature extractor with ``features_only=True``.

    Args:
        config: the architecture.
        num_classes: classifier outputs; 0 for no classifier (``forward`` returns pooled features).
        in_chans: input image channels.
        drop_rate: dropout before the classifier (default: the config's).
        drop_path_rate: stochastic depth, growing linearly with block index up to this value.
        features_only: return the feature maps at strides 2, 4, 8, 16, 32 instead of logits.
        out_indices: which of those five maps to return when ``features_only``.
        bn_momentum: PyTorch BatchNorm momentum (the paper's recipe uses 0.01).
        fuse_mixconv: run each MixConv as one depthwise conv with a kernel composed from the group
            kernels at every call (same outputs and gradients, same state dict; often faster).
    """

    def __init__(
        self,
        config: MixNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        features_only: bool = False,
        out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
        bn_momentum: float = 0.1,
        fuse_mixconv: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ValueError(f"need num_classes >= 0 and in_chans >= 1, got {num_classes}, {in_chans}")
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.config = config
        self.num_classes = num_classes
        self.drop_rate = config.drop_rate if drop_rate is None else drop_rate
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        stem = config.scaled_stem_channels
        self.stem = conv_bn_relu(in_chans, stem, 3, 2, config.padding, config.bn_eps, bn_momentum)
        stages = config.scaled_stages()
        total = sum(b.repeats for s in stages for b in s)
        self.stages = nn.Sequential()
        # A feature map is tapped after the last block at each resolution (strides 2, 4, ..., 32).
        self.feature_info: list[dict[str, int]] = []
        placed: list[dict[str, int]] = []  # position and width of every block built so far
        reduction = 2
        for s, stage in enumerate(stages):
            blocks = nn.Sequential()
            for args in expand_rows(stage):
                if args.stride == 2 and placed:
                    self.feature_info.append({**placed[-1], "reduction": reduction})
                reduction *= args.stride
                rate = drop_path_rate * len(placed) / total
                blocks.append(
                    MixBlock(
                        args,
                        padding=config.padding,
                        bn_eps=config.bn_eps,
                        bn_momentum=bn_momentum,
                        drop_path_rate=rate,
                        fuse_mixconv=fuse_mixconv,
                    )
                )
                placed.append({"stage": s, "block": len(blocks) - 1, "channels": args.out_channels})
            self.stages.append(blocks)
        self.feature_info.append({**placed[-1], "reduction": reduction})
        self.features_only = features_only
        if features_only:
            if not out_indices or any(not 0 <= i < len(self.feature_info) for i in out_indices):
                raise ValueError(f"out_indices must be in 0..{len(self.feature_info) - 1}, got {out_indices}")
            self.out_indices = tuple(out_indices)
            self.feature_info = [self.feature_info[i] for i in self.out_indices]
            self.num_features = 0
            self.reset_parameters()
            return
        last = stages[-1][-1].out_channels
        self.head = conv_bn_relu(last, config.head_channels, 1, 1, config.padding, config.bn_eps, bn_momentum)
        self.num_features = config.head_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(self.drop_rate)
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF initialisation: conv normal(0, sqrt(2 / fan_out)), linear uniform(+-1/sqrt(classes))."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The last feature map before pooling, or the multi-scale maps when ``features_only``."""
        x = self.stem(x)
        if not self.features_only:
            return self.head(self.stages(x))
        taps = {(f["stage"], f["block"]) for f in self.feature_info}
        maps = []
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                x = block(x)
                if (s, b) in taps:
                    maps.append(x)
            if len(maps) == len(taps):
                break
        return maps

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pools, applies dropout and the classifier (or stops before it with ``pre_logits``)."""
        x = self.dropout(self.pool(x).flatten(1))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Logits of shape (N, num_classes), or the feature maps when ``features_only``."""
        x = self.forward_features(x)
        return x if self.features_only else self.forward_head(x)

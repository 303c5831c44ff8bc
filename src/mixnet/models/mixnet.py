"""The MixNet network, built from a :class:`mixnet.models.configs.MixNetConfig`.

Structure (paper figure 9; TF reference ``mixnet_model.py``): stem 3x3/2 conv -> BN -> ReLU, stages of
inverted-residual blocks with MixConv depthwise kernels, head 1x1 conv -> BN -> ReLU, global average
pool, dropout, linear classifier. The model answers timm's model API (``forward_features``,
``forward_head``, ``forward_intermediates``, ``reset_classifier``, ``set_grad_checkpointing``,
``pretrained_cfg``, ``feature_info``), so code written for timm's ``mixnet_*`` runs on it unchanged.
"""

# Annotations stay objects (no ``from __future__ import annotations``): torch.fx copies a traced forward's
# annotations into its generated code, and TorchScript cannot resolve them when they are strings.
import contextlib
import functools
import math
from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mixnet.layers import DropPath, MixConv2d, SqueezeExcite, create_conv2d
from mixnet.layers.mixconv import Split
from mixnet.layers.padding import Padding
from mixnet.models.arch import BlockArgs, expand_rows
from mixnet.models.configs import MixNetConfig
from mixnet.models.features import FeatureInfo, take_indices
from mixnet.models.preprocess import Preprocess

GLOBAL_POOLS = ("avg", "")
# pretrained_cfg keys that describe a classifier: a features_only model has none (as in timm).
CLASSIFIER_CFG_KEYS = ("num_classes", "classifier", "global_pool")


class MixBlock(nn.Module):
    """Inverted residual with MixConv: expand 1x1 -> MixConv -> SE -> project 1x1 (+ identity).

    The first MixNet block (expand ratio 1) has no expansion conv. Activations: the network's base
    activation (ReLU, or ReLU6 for the MobileNets), or swish for ``sw`` rows; the projection is linear
    unless the row says ``pact`` (MobileNetV1). The skip is used when stride is 1 and widths match,
    unless the row says ``noskip``.
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
        activation: str = "relu",
        dw_split: Split = "equal",
        dw_dilated: bool = False,
    ) -> None:
        super().__init__()
        mid = args.mid_channels
        act = nn.SiLU if args.swish else activation_layer(activation)

        def bn(c: int) -> nn.BatchNorm2d:
            return nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum)

        self.has_expand = args.expand_ratio != 1
        if self.has_expand:
            self.expand_conv = MixConv2d(args.in_channels, mid, [1] * args.expand_groups, depthwise=False)
            self.expand_bn = bn(mid)
            self.expand_act = act()
        else:  # identities keep forward() free of attribute checks (TorchScript, torch.fx)
            self.expand_conv, self.expand_bn, self.expand_act = nn.Identity(), nn.Identity(), nn.Identity()
        self.dw_conv = MixConv2d(
            mid,
            mid,
            list(args.kernel_sizes),
            stride=args.stride,
            padding=padding,
            split=dw_split,
            dilated=dw_dilated,
            fused=fuse_mixconv and not dw_dilated,  # dilated groups cannot share one kernel
        )
        self.dw_bn = bn(mid)
        self.dw_act = act()
        self.se = SqueezeExcite(mid, args.se_channels, act) if args.se_ratio else nn.Identity()
        self.project_conv = MixConv2d(mid, args.out_channels, [1] * args.project_groups, depthwise=False)
        self.project_bn = bn(args.out_channels)
        self.project_act = act() if args.project_act else nn.Identity()
        self.has_skip = args.skip and args.stride == 1 and args.in_channels == args.out_channels
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block."""
        shortcut = x
        x = self.expand_act(self.expand_bn(self.expand_conv(x)))
        x = self.dw_act(self.dw_bn(self.dw_conv(x)))
        x = self.se(x)
        x = self.project_act(self.project_bn(self.project_conv(x)))
        if self.has_skip:
            x = self.drop_path(x) + shortcut
        return x


def feature_entries(config: MixNetConfig) -> list[dict]:
    """The five feature maps (strides 2..32) of a config: tapped after the last block at each resolution.

    Each entry names the module whose output the map is: the stage when the tap is its last block (always,
    for the registered tables), else the block itself.
    """
    stages = [expand_rows(stage) for stage in config.scaled_stages()]
    entries: list[dict] = []
    placed: list[tuple[int, int, int]] = []  # (stage, block, channels) of every block so far
    reduction = 2
    for s, blocks in enumerate(stages):
        for b, args in enumerate(blocks):
            if args.stride == 2 and placed:
                entries.append(_entry(*placed[-1], reduction, stages))
            reduction *= args.stride
            placed.append((s, b, args.out_channels))
    entries.append(_entry(*placed[-1], reduction, stages))
    return entries


def _entry(stage: int, block: int, channels: int, reduction: int, stages: list[list[BlockArgs]]) -> dict:
    module = f"stages.{stage}" if block == len(stages[stage]) - 1 else f"stages.{stage}.{block}"
    return {"num_chs": channels, "reduction": reduction, "module": module, "stage": stage, "block": block}


def activation_layer(name: str) -> type[nn.Module]:
    """The module class of a config's base activation (``relu`` or ``relu6``)."""
    return {"relu": nn.ReLU, "relu6": nn.ReLU6}[name]


def conv_bn_act(
    c_in: int,
    c_out: int,
    k: int,
    stride: int,
    padding: Padding,
    bn_eps: float,
    bn_momentum: float,
    activation: str = "relu",
) -> nn.Sequential:
    """The stem and head layer: conv -> BN -> activation, as ``conv``, ``bn``, ``act``."""
    return nn.Sequential(
        OrderedDict(
            conv=create_conv2d(c_in, c_out, k, stride=stride, padding=padding),
            bn=nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum),
            act=activation_layer(activation)(),
        )
    )


def default_pretrained_cfg(name: str | None, num_classes: int, preprocess: Preprocess | None = None) -> dict:
    """timm's ``pretrained_cfg`` dict for a model: input size, pool size, eval preprocessing, layer names."""
    p = preprocess or Preprocess()
    return {
        "architecture": name,
        "input_size": (3, p.img_size, p.img_size),
        "pool_size": (math.ceil(p.img_size / 32), math.ceil(p.img_size / 32)),
        "crop_pct": p.crop_pct,
        "crop_mode": "center",
        "interpolation": p.interpolation,
        "mean": tuple(p.mean),
        "std": tuple(p.std),
        "first_conv": "stem.conv",
        "classifier": "classifier",
        "num_classes": num_classes,
        "fixed_input_size": False,
    }


_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def bn_stats_kept(module: nn.Module) -> Iterator[None]:
    """Runs with the BatchNorms in ``module`` updating copies of their running statistics, then puts the originals back.

    The outputs and the tensors saved for backward are those of a normal run (turning tracking off instead
    would save fewer tensors, which activation checkpointing rejects); only the buffers stay as they were.
    """
    kept = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            kept.append((m, [getattr(m, n) for n in _BN_STATS]))
            for n in _BN_STATS:
                if getattr(m, n) is not None:
                    setattr(m, n, getattr(m, n).clone())
    try:
        yield
    finally:
        for m, buffers in kept:
            for n, buf in zip(_BN_STATS, buffers, strict=True):
                setattr(m, n, buf)


def _checkpoint_contexts(
    block: nn.Module,
) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    return contextlib.nullcontext(), bn_stats_kept(block)


def checkpoint_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Runs ``block`` with activation checkpointing: only its input is kept; the rest is recomputed in backward.

    The recomputation would otherwise update the BatchNorm running statistics a second time (momentum
    applied twice, batch count doubled); it runs with them frozen, so training with checkpointing gives
    the same outputs, gradients and running statistics as without. Dropout and drop path draw the same
    random numbers in the recomputation (``checkpoint`` restores the RNG state).
    """
    return checkpoint(block, x, use_reentrant=False, context_fn=functools.partial(_checkpoint_contexts, block))


class MixNetTrunk(nn.Module):
    """The stem and the stages, shared by the classifier (:class:`MixNet`) and the backbone (:class:`MixNetFeatures`).

    Attributes:
        config: the architecture.
        feature_info: the feature maps at strides 2, 4, 8, 16, 32 (:class:`FeatureInfo`).
        grad_checkpointing: in training, recompute each block in the backward pass instead of storing
            its activations (set with :meth:`set_grad_checkpointing`).
        pretrained_cfg: timm's dict of eval preprocessing and layer names (``default_cfg`` is an alias).
    """

    features_only = False
    # Keys dropped from pretrained_cfg whenever it is set (a backbone has no classifier).
    _dropped_cfg_keys: tuple[str, ...] = ()
    # Python-side metadata, not part of the TorchScript module.
    __jit_unused_properties__ = ["pretrained_cfg", "default_cfg"]

    def __init__(
        self,
        config: MixNetConfig,
        *,
        in_chans: int,
        drop_path_rate: float,
        bn_momentum: float,
        fuse_mixconv: bool,
        last_block: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if in_chans < 1:
            raise ValueError(f"need in_chans >= 1, got {in_chans}")
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.config = config
        self.in_chans = in_chans
        self.bn_momentum = bn_momentum
        self.grad_checkpointing = False
        self.stem = conv_bn_act(
            in_chans, config.scaled_stem_channels, 3, 2, config.padding, config.bn_eps, bn_momentum, config.activation
        )
        stages = config.scaled_stages()
        total = sum(b.repeats for s in stages for b in s)
        self.stages = nn.Sequential()
        built = 0
        for s, stage in enumerate(stages):
            blocks = nn.Sequential()
            for b, args in enumerate(expand_rows(stage)):
                if last_block is not None and (s, b) > last_block:
                    break  # a backbone builds only the blocks its feature maps need
                rate = drop_path_rate * built / total
                kw = dict(
                    padding=config.padding,
                    bn_eps=config.bn_eps,
                    bn_momentum=bn_momentum,
                    activation=config.activation,
                    dw_split=config.dw_split,
                    dw_dilated=config.dw_dilated,
                )
                blocks.append(MixBlock(args, drop_path_rate=rate, fuse_mixconv=fuse_mixconv, **kw))
                built += 1
            if len(blocks):
                self.stages.append(blocks)
        self.pretrained_cfg = default_pretrained_cfg(None, 0)

    @property
    def pretrained_cfg(self) -> dict:
        """timm's ``pretrained_cfg``: input size, crop, interpolation, mean/std, first conv and classifier names."""
        return self._pretrained_cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, cfg: dict) -> None:
        self._pretrained_cfg = {k: v for k, v in cfg.items() if k not in self._dropped_cfg_keys}

    @property
    def default_cfg(self) -> dict:
        """timm's older name of :attr:`pretrained_cfg` (the same dict)."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict) -> None:
        self.pretrained_cfg = cfg

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

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute every block in the backward pass (in training): less memory, about one more forward of time.

        See :func:`checkpoint_block`. A scripted model never checkpoints.
        """
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter grouping (for layer-wise lr decay): the stem, the stages or blocks, the head last."""
        blocks = r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.(\d+)"
        return {"stem": r"^stem", "blocks": [(blocks, None), (r"^head", (99999,))]}

    def _blocks(self) -> list[nn.Module]:
        """Every built block, in order."""
        return [block for stage in self.stages for block in stage]

    def _block_channels(self) -> list[int]:
        """Output channels after 0 (the stem), 1, 2, ... blocks of the full architecture."""
        rows = [args for stage in self.config.scaled_stages() for args in expand_rows(stage)]
        return [self.config.scaled_stem_channels] + [args.out_channels for args in rows]


class MixNet(MixNetTrunk):
    """A MixNet classifier (or, with ``num_classes=0``, a pooled-feature or feature-map extractor).

    Args:
        config: the architecture.
        num_classes: classifier outputs; 0 for no classifier (``forward`` returns pooled features).
        in_chans: input image channels.
        drop_rate: dropout before the classifier (default: the config's).
        drop_path_rate: stochastic depth, growing linearly with block index up to this value.
        global_pool: ``avg`` (global average pool) or ``''`` (no pooling: with ``num_classes=0``,
            ``forward`` returns the unpooled head feature map).
        bn_momentum: PyTorch BatchNorm momentum (the paper's recipe uses 0.01).
        fuse_mixconv: run each MixConv as one depthwise conv with a kernel composed from the group
            kernels at every call (same outputs and gradients, same state dict; often faster).

    Attributes:
        num_features: channels of :meth:`forward_features` (the head conv's width, 1536 for MixNet; the
            last block's width for a model without head conv).
        head_hidden_size: width of the pooled features the classifier sees (= ``num_features``).
        stage_ends: for each :attr:`feature_info` map, its ``forward_intermediates(extra_blocks=True)`` index
            (timm's ``stage_ends``: 0 is the stem, i the output of stage i - 1).
    """

    def __init__(
        self,
        config: MixNetConfig,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        bn_momentum: float = 0.1,
        fuse_mixconv: bool = False,
    ) -> None:
        super().__init__(
            config, in_chans=in_chans, drop_path_rate=drop_path_rate, bn_momentum=bn_momentum, fuse_mixconv=fuse_mixconv
        )
        self.drop_rate = config.drop_rate if drop_rate is None else drop_rate
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        entries = feature_entries(config)
        self.feature_info = FeatureInfo(entries)
        self.stage_ends = [e["stage"] + 1 for e in entries]
        # Number of blocks run before each feature map: where forward_intermediates takes it.
        starts = [0]
        for stage in self.stages:
            starts.append(starts[-1] + len(stage))
        self.feature_positions = [starts[e["stage"]] + e["block"] + 1 for e in entries]
        self.stage_positions = starts
        last = config.scaled_stages()[-1][-1].out_channels
        self.head: nn.Module = nn.Identity()  # no head conv (MobileNetV1): the last block's output is pooled
        if config.scaled_head_channels:
            self.head = conv_bn_act(
                last,
                config.scaled_head_channels,
                1,
                1,
                config.padding,
                config.bn_eps,
                bn_momentum,
                config.activation,
            )
        self.num_features = self.head_hidden_size = config.num_features
        self.pool: nn.Module = nn.Identity()
        self.dropout = nn.Dropout(self.drop_rate)
        self.num_classes = num_classes
        self.global_pool = "avg"
        self.classifier: nn.Module = nn.Identity()
        self._set_head(num_classes, global_pool)
        self.reset_parameters()  # initialises the classifier too (one draw of random numbers, as before)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The final linear layer (an ``nn.Identity`` when there are no classes)."""
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new, freshly initialised classifier with ``num_classes`` outputs (0: none), and optionally pooling.

        Args:
            num_classes: classifier outputs; 0 for none (``forward`` then returns the pooled features,
                or with ``global_pool=''`` the unpooled feature map).
            global_pool: ``avg`` or ``''``; None keeps the current pooling (as timm).

        Raises:
            ValueError: a negative class count, an unknown ``global_pool``, or no pooling with a classifier.
        """
        self._set_head(num_classes, global_pool)
        if num_classes:
            bound = 1.0 / math.sqrt(num_classes)
            nn.init.uniform_(self.classifier.weight, -bound, bound)
            nn.init.zeros_(self.classifier.bias)

    def _set_head(self, num_classes: int, global_pool: str | None) -> None:
        if num_classes < 0:
            raise ValueError(f"need num_classes >= 0, got {num_classes}")
        pool = self.global_pool if global_pool is None else global_pool
        if pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool must be 'avg' or '' (no pooling), got {global_pool!r}")
        if pool == "" and num_classes:
            raise ValueError(
                "global_pool='' (no pooling) needs num_classes=0 (a linear classifier needs pooled features)"
            )
        self.num_classes, self.global_pool = num_classes, pool
        self.head_hidden_size = self.num_features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)) if pool else nn.Identity()
        if num_classes:
            w = self.stem.conv.weight  # the new layer goes on the model's device, in its dtype
            self.classifier = nn.Linear(self.num_features, num_classes, device=w.device, dtype=w.dtype)
        else:
            self.classifier = nn.Identity()
        self.pretrained_cfg = {**self.pretrained_cfg, "num_classes": num_classes}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's feature map before pooling, (N, num_features, H/32, W/32)."""
        x = self.stem(x)
        if not torch.jit.is_scripting() and self.grad_checkpointing and self.training:
            for stage in self.stages:
                for block in stage:
                    x = checkpoint_block(block, x)
        else:
            x = self.stages(x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pools, applies dropout and the classifier (or stops before it with ``pre_logits``)."""
        x = self.dropout(self.pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes), or pooled (unpooled) features when there is no classifier."""
        return self.forward_head(self.forward_features(x))

    def _positions(self, indices: int | list[int] | None, extra_blocks: bool) -> list[int]:
        """The requested maps as numbers of blocks run before each (0: the stem output)."""
        if extra_blocks:
            return [self.stage_positions[i] for i in take_indices(len(self.stage_positions), indices)]
        return [self.feature_positions[i] for i in take_indices(len(self.feature_positions), indices)]

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        extra_blocks: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's ``forward_intermediates``: the feature maps at ``indices`` and (optionally) the final features.

        Args:
            x: input images.
            indices: which maps of :attr:`feature_info` (or, with ``extra_blocks``, of the stem and every
                stage): None = all, an int n = the last n, a list = those (negative counts from the end).
            norm: accepted for timm compatibility (MixNet has no final norm to apply).
            stop_early: stop after the last requested map (the head is then not run unless that map
                is the last stage's).
            output_fmt: only ``NCHW``.
            intermediates_only: return only the list of maps.
            extra_blocks: index the stem (0) and the output of every stage (1..) instead of feature_info.

        Returns:
            The list of maps, or ``(final feature map, maps)``: the head output when every block ran,
            else the output of the last block that ran.

        Raises:
            ValueError: an index out of range, or another ``output_fmt``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        wanted = self._positions(indices, extra_blocks)
        last = max(wanted)
        maps: list[torch.Tensor] = []
        x = self.stem(x)
        ran = 0
        if ran in wanted:
            maps.append(x)
        blocks = self._blocks()
        for block in blocks:
            if stop_early and ran >= last:
                break
            x = checkpoint_block(block, x) if self.grad_checkpointing and self.training else block(x)
            ran += 1
            if ran in wanted:
                maps.append(x)
        if intermediates_only:
            return maps
        return (self.head(x) if ran == len(blocks) else x), maps

    @torch.jit.ignore
    def prune_intermediate_layers(
        self,
        indices: int | list[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
        extra_blocks: bool = False,
    ) -> list[int]:
        """Removes what the maps at ``indices`` do not need, as timm does; returns the kept indices.

        The blocks after the last requested map go. When blocks went, or with ``prune_head`` or
        ``prune_norm``, the head conv and the classifier go too and :attr:`num_features` becomes the
        width of the last kept map (``forward_features`` then returns it; ``forward`` pools it).

        Raises:
            ValueError: an index out of range.
        """
        count = len(self.stage_positions) if extra_blocks else len(self.feature_positions)
        kept = take_indices(count, indices)
        keep = max(self._positions(kept, extra_blocks))
        channels = self._block_channels()[keep]
        total = len(self._blocks())
        stages = nn.Sequential()
        left = keep
        for stage in self.stages:
            if left <= 0:
                break
            stages.append(stage if len(stage) <= left else stage[:left])
            left -= len(stage)
        self.stages = stages
        if prune_norm or prune_head or keep < total:
            self.head = nn.Identity()
            self.num_features = self.head_hidden_size = channels
            self.reset_classifier(0, "")
        return kept


class MixNetFeatures(MixNetTrunk):
    """A MixNet backbone: the feature maps at strides 2, 4, 8, 16, 32 (timm's ``features_only=True``).

    Only the blocks up to the last requested map are built, so a backbone of the first three maps holds
    no weights of the later stages.

    Args:
        config: the architecture.
        out_indices: which of the five maps :meth:`forward` returns.
        in_chans: input image channels.
        drop_path_rate: stochastic depth, growing linearly with block index up to this value.
        bn_momentum: PyTorch BatchNorm momentum.
        fuse_mixconv: see :class:`MixNet`.
    """

    features_only = True
    _dropped_cfg_keys = CLASSIFIER_CFG_KEYS

    def __init__(
        self,
        config: MixNetConfig,
        *,
        out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        bn_momentum: float = 0.1,
        fuse_mixconv: bool = False,
    ) -> None:
        entries = feature_entries(config)
        out_indices = tuple(out_indices)
        if not out_indices or any(not -len(entries) <= i < len(entries) for i in out_indices):
            raise ValueError(f"out_indices must be in 0..{len(entries) - 1}, got {out_indices}")
        self.out_indices = tuple(i % len(entries) for i in out_indices)
        taps = [entries[i] for i in self.out_indices]
        last = max((e["stage"], e["block"]) for e in taps)
        super().__init__(
            config,
            in_chans=in_chans,
            drop_path_rate=drop_path_rate,
            bn_momentum=bn_momentum,
            fuse_mixconv=fuse_mixconv,
            last_block=last,
        )
        self.feature_info = FeatureInfo(entries, self.out_indices)
        # Index of the first block of every stage, and one past the last, in the flat block order.
        self.stage_starts = [0]
        for stage in self.stages:
            self.stage_starts.append(self.stage_starts[-1] + len(stage))
        # Flat index of every block whose output is returned (flat lists: TorchScript has no sets and cannot
        # type an empty list attribute).
        self.taps = [self.stage_starts[e["stage"]] + e["block"] for e in taps]
        # A stage tapped at most at its end runs as one module, so that a hook on ``stages.N`` (the
        # feature_info module name) sees the map; others run block by block.
        self.whole_stages = [
            not any(start <= t < end - 1 for t in self.taps)
            for start, end in zip(self.stage_starts[:-1], self.stage_starts[1:], strict=True)
        ]
        self.num_classes = 0
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The requested feature maps, shallow to deep."""
        return self.forward_maps(x)

    def forward_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The requested feature maps as a list, whatever :meth:`forward` returns."""
        x = self.stem(x)
        maps: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            start = self.stage_starts[i]
            if not torch.jit.is_scripting() and self.grad_checkpointing and self.training:
                for b, block in enumerate(stage):
                    x = checkpoint_block(block, x)
                    if start + b in self.taps:
                        maps.append(x)
            elif self.whole_stages[i]:
                x = stage(x)
                if self.stage_starts[i + 1] - 1 in self.taps:
                    maps.append(x)
            else:
                for b, block in enumerate(stage):
                    x = block(x)
                    if start + b in self.taps:
                        maps.append(x)
        return maps


class MixNetFeatureDict(MixNetFeatures):
    """A backbone returning ``{str(out_index): map}`` (timm's ``feature_cls="dict"``, same keys and order)."""

    def __init__(self, config: MixNetConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.keys = [str(i) for i in self.out_indices]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The requested feature maps by out index, shallow to deep."""
        out: dict[str, torch.Tensor] = {}
        for i, m in enumerate(self.forward_maps(x)):  # enumerate: TorchScript's zip takes no strict=
            out[self.keys[i]] = m
        return out


def fx_features(backbone: MixNetFeatures) -> torch.fx.GraphModule:
    """timm's ``feature_cls="fx"``: the backbone traced by torch.fx, returning the same maps.

    The traced module keeps the backbone's ``feature_info``, ``pretrained_cfg`` and ``out_indices``, and
    scripts with ``torch.jit.script``.
    """
    graph = torch.fx.symbolic_trace(backbone)
    graph.feature_info = backbone.feature_info
    graph.pretrained_cfg = graph.default_cfg = backbone.pretrained_cfg
    graph.out_indices = backbone.out_indices
    graph.features_only = True
    graph.num_classes = 0
    return graph

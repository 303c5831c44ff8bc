"""The MixNet search space of the paper (section 5.1), on the skeleton of a registered model.

The skeleton fixes the number of blocks, their strides and widths (after MixNet-S, by default). Each block
chooses its depthwise MixConv kernel groups ({3}, {3,5}, {3,5,7}, {3,5,7,9}, {3,...,11}, equal split),
expansion ratio {1, 3, 6}, squeeze-excite ratio {none, 0.25, 0.5}, ReLU or swish, and 1 or 2 groups for
its expansion and projection 1x1 convs; the identity shortcut is used wherever the shapes allow. With
``elastic_depth`` a block that is not the first of its stage (stride 1, same width in and out) may also be
left out (the :data:`SKIP` choice), so stage depths are searched too. A point of the space is an
:class:`Arch`, which becomes an ordinary :class:`mixnet.MixNetConfig` (and an
architecture file).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from mixnet.models.arch import BlockArgs, expand_rows
from mixnet.models.configs import MixNetConfig
from mixnet.models.registry import get_entry

KERNELS = ((3,), (3, 5), (3, 5, 7), (3, 5, 7, 9), (3, 5, 7, 9, 11))
EXPANSIONS = (1, 3, 6)
SE_RATIOS = (None, 0.25, 0.5)
SWISH = (False, True)
GROUPS = (1, 2)


@dataclass(frozen=True)
class Slot:
    """A block position of the skeleton: what the space does not change."""

    stride: int
    in_channels: int
    out_channels: int


@dataclass(frozen=True)
class BlockChoice:
    """What the space chooses for one block."""

    kernels: tuple[int, ...]
    expand: int
    se: float | None
    swish: bool
    expand_groups: int
    project_groups: int

    @property
    def is_skip(self) -> bool:
        """Whether this is :data:`SKIP` (the block left out)."""
        return not self.kernels

    def block(self, slot: Slot) -> BlockArgs:
        """The block this choice gives at ``slot`` (not for :data:`SKIP`, which gives none)."""
        return BlockArgs(
            repeats=1,
            kernel_sizes=self.kernels,
            expand_groups=self.expand_groups if self.expand != 1 else 1,
            project_groups=self.project_groups,
            stride=slot.stride,
            expand_ratio=float(self.expand),
            in_channels=slot.in_channels,
            out_channels=slot.out_channels,
            se_ratio=self.se,
            swish=self.swish,
        )


Arch = tuple[BlockChoice, ...]
SKIP = BlockChoice((), 0, None, False, 1, 1)  # elastic depth: the block is left out


@dataclass(frozen=True)
class SearchSpace:
    """The per-block choices over a fixed skeleton.

    Attributes:
        skeleton: the registered model whose stem, head, strides and widths are kept.
        kernels, expansions, se_ratios, swish, groups: the choices (the paper's by default).
        skeleton_config: a config to use as the skeleton instead of the registered one (small tests,
            custom skeletons).
        elastic_depth: allow leaving out any block but the first of each stage (searching stage depths).
    """

    skeleton: str = "mixnet_s"
    kernels: tuple[tuple[int, ...], ...] = KERNELS
    expansions: tuple[int, ...] = EXPANSIONS
    se_ratios: tuple[float | None, ...] = SE_RATIOS
    swish: tuple[bool, ...] = SWISH
    groups: tuple[int, ...] = GROUPS
    skeleton_config: MixNetConfig | None = None
    elastic_depth: bool = False

    @property
    def base(self) -> MixNetConfig:
        """The skeleton's config."""
        return self.skeleton_config or get_entry(self.skeleton).config

    def stage_slots(self) -> list[list[Slot]]:
        """The block positions, per stage."""
        return [
            [Slot(b.stride, b.in_channels, b.out_channels) for b in expand_rows(stage)]
            for stage in self.base.scaled_stages()
        ]

    def slots(self) -> list[Slot]:
        """Every block position, in order."""
        return [s for stage in self.stage_slots() for s in stage]

    def skippable(self) -> list[bool]:
        """Per position: whether the block may be left out (elastic depth, never a stage's first block)."""
        return [
            self.elastic_depth and j > 0 and s.stride == 1 and s.in_channels == s.out_channels
            for stage in self.stage_slots()
            for j, s in enumerate(stage)
        ]

    def choices_at(self, i: int) -> list[BlockChoice]:
        """The choices of position ``i``: :meth:`choices`, and :data:`SKIP` where the block may be left out."""
        return self.choices() + [SKIP] if self.skippable()[i] else self.choices()

    def choices(self) -> list[BlockChoice]:
        """Every block choice (the same set at every position; :data:`SKIP` is not among them)."""
        out = []
        for k in self.kernels:
            for e in self.expansions:
                for se in self.se_ratios:
                    for sw in self.swish:
                        for pg in self.groups:
                            for eg in self.groups if e != 1 else (1,):
                                out.append(BlockChoice(k, e, se, sw, eg, pg))
        return out

    def size(self) -> int:
        """Number of distinct architectures (with elastic depth: each stage depth counted once, its left-out
        blocks last)."""
        n = len(self.choices())
        total, i = 1, 0
        for slots in self.stage_slots():
            may_skip = sum(self.skippable()[i : i + len(slots)])
            total *= sum(n**d for d in range(len(slots) - may_skip, len(slots) + 1))
            i += len(slots)
        return total

    def sample(self, rng: random.Random) -> Arch:
        """A random architecture: each position's choice drawn uniformly; with elastic depth, each stage's
        depth is drawn uniformly first (as Once-for-All samples depths), its left-out blocks last."""
        if not self.elastic_depth:
            return tuple(rng.choice(self.choices_at(i)) for i in range(len(self.slots())))
        choices, skippable, out, i = self.choices(), self.skippable(), [], 0
        for slots in self.stage_slots():
            keep_min = len(slots) - sum(skippable[i : i + len(slots)])
            depth = rng.randint(keep_min, len(slots))
            out += [rng.choice(choices) for _ in range(depth)] + [SKIP] * (len(slots) - depth)
            i += len(slots)
        return tuple(out)

    def redraw_depths(self, arch: Arch, rng: random.Random, prob: float) -> Arch:
        """``arch`` with each stage's depth drawn again with probability ``prob`` (elastic depth only; new
        blocks get uniform choices). Mutation by single positions alone rarely changes a depth."""
        if not self.elastic_depth:
            return tuple(arch)
        arch = self.canonical(arch)
        choices, skippable, out, i = self.choices(), self.skippable(), [], 0
        for slots in self.stage_slots():
            stage = list(arch[i : i + len(slots)])
            if rng.random() < prob:
                keep_min = len(slots) - sum(skippable[i : i + len(slots)])
                depth = rng.randint(keep_min, len(slots))
                kept = [c for c in stage if not c.is_skip][:depth]
                kept += [rng.choice(choices) for _ in range(depth - len(kept))]
                stage = kept + [SKIP] * (len(slots) - depth)
            out += stage
            i += len(slots)
        return tuple(out)

    def canonical(self, arch: Arch) -> Arch:
        """``arch`` with each stage's kept blocks first and its left-out ones last (the same net).

        With elastic depth, a stage of depth d runs the supernet weights of its first d positions (as
        Once-for-All keeps the first blocks of a stage), and one net has one architecture.
        """
        if not self.elastic_depth:
            return tuple(arch)
        out, i = [], 0
        for slots in self.stage_slots():
            stage = arch[i : i + len(slots)]
            out += [c for c in stage if not c.is_skip] + [c for c in stage if c.is_skip]
            i += len(slots)
        return tuple(out)

    def config(self, arch: Arch) -> MixNetConfig:
        """The architecture as a config: the skeleton with one block row per searched block."""
        stage_slots = self.stage_slots()
        if len(arch) != sum(len(s) for s in stage_slots):
            raise ValueError(
                f"an architecture of this space has {sum(len(s) for s in stage_slots)} blocks, got {len(arch)}"
            )
        if any(c.is_skip and not ok for c, ok in zip(arch, self.skippable(), strict=True)):
            raise ValueError("the architecture leaves out a block that this space must keep")
        it = iter(arch)
        chosen = [[(next(it), slot) for slot in slots] for slots in stage_slots]
        stages = tuple(tuple(c.block(slot) for c, slot in stage if not c.is_skip) for stage in chosen)
        # The skeleton's multipliers are already in the slots' widths, the stem's and the head's.
        base = self.base
        return dataclasses.replace(
            base,
            stages=stages,
            stem_channels=base.scaled_stem_channels,
            head_channels=base.scaled_head_channels,
            scale_head=False,
            width_mult=1.0,
            depth_mult=1.0,
        )

    def check_skeleton(self) -> None:
        """Raises ValueError unless the skeleton can carry a supernet: symmetric padding and a head conv."""
        base = self.base
        if base.padding != "symmetric" or not base.head_channels:
            raise ValueError(
                f"{self.skeleton} cannot be a search skeleton: it needs symmetric padding and a head conv "
                f"(it has {base.padding} padding and head width {base.head_channels})"
            )

    def of_config(self, config: MixNetConfig) -> Arch:
        """The choices that give ``config`` (the inverse of :meth:`config`).

        Raises:
            ValueError: ``config`` is not a point of this space.
        """
        stages = [expand_rows(stage) for stage in config.scaled_stages()]
        stage_slots = self.stage_slots()
        if len(stages) != len(stage_slots):
            raise ValueError(f"{len(stages)} stages, but this space has {len(stage_slots)}")
        skippable = iter(self.skippable())
        arch = []
        for blocks, slots in zip(stages, stage_slots, strict=True):
            if len(blocks) > len(slots):
                raise ValueError(f"a stage of {len(blocks)} blocks, but this space has {len(slots)} there")
            for j, slot in enumerate(slots):
                may_skip = next(skippable)
                if j >= len(blocks):
                    if not may_skip:
                        raise ValueError(f"a stage of {len(blocks)} blocks, but this space has {len(slots)} there")
                    arch.append(SKIP)
                    continue
                b = blocks[j]
                if (b.stride, b.in_channels, b.out_channels) != (slot.stride, slot.in_channels, slot.out_channels):
                    raise ValueError(f"block {b} does not fit the skeleton's {slot}")
                choice = BlockChoice(
                    b.kernel_sizes, int(b.expand_ratio), b.se_ratio, b.swish, b.expand_groups, b.project_groups
                )
                if choice not in self.choices():
                    raise ValueError(f"block {b} is not a choice of this space")
                arch.append(choice)
        return tuple(arch)

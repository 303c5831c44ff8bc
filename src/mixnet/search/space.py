"""The MixNet search space of the paper (section 5.1), on the skeleton of a registered model.

The skeleton fixes the number of blocks, their strides and widths (after MixNet-S, by default). Each block
chooses its depthwise MixConv kernel groups ({3}, {3,5}, {3,5,7}, {3,5,7,9}, {3,...,11}, equal split),
expansion ratio {1, 3, 6}, squeeze-excite ratio {none, 0.25, 0.5}, ReLU or swish, and 1 or 2 groups for
its expansion and projection 1x1 convs; the identity shortcut is used wherever the shapes allow. A point
of the space is an :class:`Arch`, which becomes an ordinary :class:`mixnet.MixNetConfig` (and an
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

    def block(self, slot: Slot) -> BlockArgs:
        """The block this choice gives at ``slot``."""
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


@dataclass(frozen=True)
class SearchSpace:
    """The per-block choices over a fixed skeleton.

    Attributes:
        skeleton: the registered model whose stem, head, strides and widths are kept.
        kernels, expansions, se_ratios, swish, groups: the choices (the paper's by default).
        skeleton_config: a config to use as the skeleton instead of the registered one (small tests,
            custom skeletons).
    """

    skeleton: str = "mixnet_s"
    kernels: tuple[tuple[int, ...], ...] = KERNELS
    expansions: tuple[int, ...] = EXPANSIONS
    se_ratios: tuple[float | None, ...] = SE_RATIOS
    swish: tuple[bool, ...] = SWISH
    groups: tuple[int, ...] = GROUPS
    skeleton_config: MixNetConfig | None = None

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

    def choices(self) -> list[BlockChoice]:
        """Every choice one block can take (the same set at every position)."""
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
        """Number of distinct architectures."""
        return len(self.choices()) ** len(self.slots())

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random architecture."""
        choices = self.choices()
        return tuple(rng.choice(choices) for _ in self.slots())

    def config(self, arch: Arch) -> MixNetConfig:
        """The architecture as a config: the skeleton with one block row per searched block."""
        stage_slots = self.stage_slots()
        if len(arch) != sum(len(s) for s in stage_slots):
            raise ValueError(
                f"an architecture of this space has {sum(len(s) for s in stage_slots)} blocks, got {len(arch)}"
            )
        it = iter(arch)
        stages = tuple(tuple(next(it).block(slot) for slot in slots) for slots in stage_slots)
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
        blocks = [b for stage in config.scaled_stages() for b in expand_rows(stage)]
        slots = self.slots()
        if len(blocks) != len(slots):
            raise ValueError(f"{len(blocks)} blocks, but this space has {len(slots)}")
        arch = []
        for b, slot in zip(blocks, slots, strict=True):
            if (b.stride, b.in_channels, b.out_channels) != (slot.stride, slot.in_channels, slot.out_channels):
                raise ValueError(f"block {b} does not fit the skeleton's {slot}")
            choice = BlockChoice(
                b.kernel_sizes, int(b.expand_ratio), b.se_ratio, b.swish, b.expand_groups, b.project_groups
            )
            if choice not in self.choices():
                raise ValueError(f"block {b} is not a choice of this space")
            arch.append(choice)
        return tuple(arch)

"""One process or many: ``torchrun`` environment, DistributedDataParallel, rank-0-only side effects.

The same ``mixnet train`` runs alone or under ``torchrun --nproc_per_node=N [--nnodes ...]``: torchrun
sets RANK / WORLD_SIZE / LOCAL_RANK, we join the process group (NCCL on CUDA, Gloo on CPU) and each
process trains on its shard of a ``DistributedSampler``. Validation is sharded too (:class:`ShardSampler`,
counts summed with :func:`sum_across`); only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from mixnet.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 when not distributed).
        world_size: number of processes.
        local_rank: rank on this node (picks the GPU).
        device: the device this process trains on.
        created_group: whether :func:`init_distributed` joined the process group (and so may leave it);
            a group the caller set up is the caller's to destroy.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    created_group: bool = False

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and saves."""
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Joins the process group when launched by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    created = False
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        created = True
    return DistInfo(rank, world_size, local_rank, dev, created)


def cleanup_distributed(info: DistInfo) -> None:
    """Leaves the process group if :func:`init_distributed` joined it (never one the caller created)."""
    if info.created_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Waits for every process (no-op alone)."""
    if info.distributed:
        dist.barrier()


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """The mean of ``value`` over processes."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.item() / info.world_size


def all_true(flag: bool, info: DistInfo) -> bool:
    """Whether ``flag`` holds on every process (so all of them stop together)."""
    if not info.distributed:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=info.device if info.device.type == "cuda" else None)
    return box[0]


def broadcast_state(module: nn.Module, info: DistInfo) -> None:
    """Copies rank 0's parameters and buffers into ``module`` on every process, in place (no-op alone).

    Before a sharded evaluation: BN running statistics drift apart between processes (each updates them
    from its own batches), and the result must be that of the weights rank 0 saves.
    """
    if not info.distributed:
        return
    with torch.no_grad():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


def sum_across(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise sum of ``t`` over processes (``t`` itself alone); returned on ``t``'s device."""
    if not info.distributed:
        return t
    x = t.to(info.device)
    dist.all_reduce(x)
    return x.to(t.device)


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` of a data set: disjoint shards that cover it exactly once.

    Unlike ``DistributedSampler`` it never pads with repeated samples, so metrics summed over the shards
    are those of the whole set (the shards differ in length by at most one).
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))

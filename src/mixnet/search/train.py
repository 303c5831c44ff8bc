"""Training the supernet: uniform single-path sampling (SPOS, Guo et al. 2020), resumable, under torchrun.

Every step trains one path drawn uniformly from the space, so all paths get trained about equally and no
path's ranking is favoured by the training itself (the reason SPOS decouples supernet training from the
search). The path of step ``t`` is drawn from a generator seeded by ``(seed, t)``: every DDP process trains
the same path, and a resumed run draws what an unbroken one would have. A checkpoint (weights, optimizer,
schedule, epoch) is written atomically after every epoch.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from mixnet.search.space import SearchSpace
from mixnet.search.supernet import SuperNet
from mixnet.train.checkpoint import rng_state, save_checkpoint, set_rng_state
from mixnet.train.distributed import DistInfo, all_reduce_mean, barrier

SUPERNET_CHECKPOINT = "supernet.pth"


@dataclass(frozen=True)
class Splits:
    """The data of a search: supernet training images, the held-out images that rank candidates, and the
    final validation images (used only to evaluate retrained nets)."""

    train: Dataset  # train transform, the supernet's share of the train split (also BN recalibration)
    search_val: Dataset  # eval transform, held out from the train split
    val: Dataset  # eval transform, the data's own val split
    class_names: list[str]


def build_splits(data: str, img_size: int, *, search_fraction: float, seed: int, crop_scale, crop_pct: float) -> Splits:
    """Splits the train split into supernet training and candidate ranking (seeded), keeping val apart."""
    from mixnet.data.datasets import build_datasets
    from mixnet.data.transforms import eval_transform, train_transform

    train_tf = train_transform(img_size, hflip=0.0, scale=tuple(crop_scale))
    eval_tf = eval_transform(img_size, crop_pct=crop_pct)
    train_ds, val_ds, names = build_datasets(data, train_tf=train_tf, val_tf=eval_tf, seed=seed)
    # The same files in the same order: leave out unopened what the first pass found unreadable.
    skipped = dict(getattr(train_ds, "skipped", []) + getattr(val_ds, "skipped", []))
    train_eval_ds, _, _ = build_datasets(
        data, train_tf=eval_tf, val_tf=eval_tf, seed=seed, verify=False, exclude=skipped or None
    )
    if len(train_eval_ds) != len(train_ds):
        raise ValueError(f"{data}: the training images changed while the search read them; run it again")
    order = torch.randperm(len(train_ds), generator=torch.Generator().manual_seed(seed)).tolist()
    n_search = max(1, int(len(order) * search_fraction))
    held, rest = sorted(order[:n_search]), sorted(order[n_search:])
    return Splits(Subset(train_ds, rest), Subset(train_eval_ds, held), val_ds, names)


def path_of_step(space: SearchSpace, seed: int, step: int):
    """The path trained at optimizer step ``step`` (the same in every process and after a resume)."""
    return space.sample(random.Random(seed * 1_000_003 + step))


def train_supernet(
    space: SearchSpace,
    splits: Splits,
    out: Path,
    info: DistInfo,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    workers: int = 0,
    log=print,
) -> SuperNet:
    """Trains (or resumes training) the supernet; returns it (unwrapped) after the last epoch."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    net = SuperNet(space, len(splits.class_names)).to(info.device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sampler = DistributedSampler(splits.train, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
    loader = DataLoader(splits.train, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=True)
    steps_per_epoch = max(1, len(loader))
    total = epochs * steps_per_epoch
    warmup = steps_per_epoch // 2

    def factor(t: int) -> float:
        if t < warmup:
            return (t + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - warmup) / max(1, total - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    start = 0
    ckpt_path = out / SUPERNET_CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(ckpt["supernet"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start = int(ckpt["epoch"])
        set_rng_state(ckpt["rng"])
        if start < epochs:
            log(f"supernet: resuming after epoch {start} of {epochs}")
    model = net
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[info.device] if info.device.type == "cuda" else None, find_unused_parameters=True
        )
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        losses = []
        for i, (x, y) in enumerate(loader):
            step = epoch * steps_per_epoch + i
            x, y = x.to(info.device), y.to(info.device)
            loss = F.cross_entropy(model(x, path_of_step(space, seed, step)), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.detach())
        mean_loss = all_reduce_mean(float(torch.stack(losses).mean()), info) if losses else float("nan")
        if info.is_main:
            state = {
                "supernet": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "epochs": epochs,
                "rng": rng_state(),
            }
            save_checkpoint(ckpt_path, state)
            log(f"supernet epoch {epoch + 1}/{epochs}: loss {mean_loss:.4f} ({time.perf_counter() - t0:.0f} s)")
        barrier(info)
    return net

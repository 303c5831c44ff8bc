"""Training the supernet: single-path sampling (SPOS, Guo et al. 2020), resumable, under torchrun.

Every step trains one path, drawn by the search's own sampler: under a hard latency target, a uniform draw
repaired to meet the target (the same draw the searches start from), so the supernet is trained on the
region it will rank (constraint-aware sampling); else a uniform draw from the whole space. The path of step
``t`` is drawn from a generator seeded by ``(seed, t)``: every DDP process trains the same path, and a
resumed run draws what an unbroken one would have. The training is ``mixnet train``'s:
its loaders, optimizer and schedule (:func:`supernet_recipe`), engine, epoch loop and checkpoint contents
(weights, optimizer, schedule, every process's RNG state, epoch), written atomically after every epoch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from mixnet.io.files import read_checkpoint
from mixnet.measure.threads import threads as thread_count
from mixnet.search.space import Arch, SearchSpace
from mixnet.search.supernet import SuperNet
from mixnet.train.checkpoint import save_checkpoint
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import DistInfo
from mixnet.train.engine import StepContext
from mixnet.train.loaders import epoch_loader, fit_batch
from mixnet.train.loop import run_epochs
from mixnet.train.resume import restore_state
from mixnet.train.state import build_state, distribute

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


Sampler = Callable[[random.Random], Arch]


def path_of_step(space: SearchSpace, seed: int, step: int, sample: Sampler | None = None) -> Arch:
    """The path trained at optimizer step ``step`` (the same in every process and after a resume), drawn by
    ``sample`` (default: uniform over the space)."""
    return (sample or space.sample)(random.Random(seed * 1_000_003 + step))


def training_paths(space: SearchSpace, seed: int, steps: int, sample: Sampler | None = None) -> list[Arch]:
    """Every path a training of ``steps`` optimizer steps trains, in order."""
    return [path_of_step(space, seed, t, sample) for t in range(steps)]


class _PathOfStep(nn.Module):
    """The supernet as a one-input module for the training engine: a forward trains the path of the
    current optimizer step (the scheduler's position)."""

    def __init__(self, net: SuperNet, space: SearchSpace, seed: int, scheduler, sample: Sampler | None) -> None:
        super().__init__()
        self.net, self.space, self.seed, self.scheduler, self.sample = net, space, seed, scheduler, sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, path_of_step(self.space, self.seed, self.scheduler.last_epoch, self.sample))


def supernet_recipe(
    *, epochs: int, batch_size: int, lr: float, weight_decay: float, seed: int, workers: int = 0, threads: int = 0
) -> TrainConfig:
    """The supernet's training options as a :class:`TrainConfig`: AdamW, half an epoch of warmup, then a
    cosine to zero; label smoothing 0.1; full precision, no EMA."""
    return TrainConfig.from_preset(
        "short",
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        workers=workers,
        threads=threads,
        min_lr_ratio=0.0,
        ema_decay=0.0,
        amp="none",
        channels_last=False,
        progress=False,
    )


def supernet_steps(splits: Splits, config: TrainConfig, world_size: int = 1) -> int:
    """Optimizer steps of the whole supernet training (full batches only, as the loader draws them)."""
    batch = fit_batch(config.batch_size, 1, len(splits.train), world_size)
    return config.epochs * (len(splits.train) // world_size // batch)


def train_supernet(
    space: SearchSpace,
    splits: Splits,
    out: Path,
    info: DistInfo,
    config: TrainConfig,
    *,
    sample: Sampler | None = None,
    log=print,
) -> SuperNet:
    """Trains (or resumes training) the supernet on ``config`` (:func:`supernet_recipe`) with the training
    loop's parts, each step on the path ``sample`` draws (default: uniform); returns it (unwrapped) after the
    last epoch."""
    seed, epochs = config.seed, config.epochs
    with thread_count(config.threads or None):
        torch.manual_seed(seed)
        out.mkdir(parents=True, exist_ok=True)
        batch = fit_batch(config.batch_size, 1, len(splits.train), info.world_size)
        if batch != config.batch_size and info.is_main:
            log(f"supernet: {len(splits.train)} training images, fewer than batch {config.batch_size}: batch {batch}")
        loader = epoch_loader(splits.train, info, batch_size=batch, seed=seed, workers=config.workers)
        net = SuperNet(space, len(splits.class_names))
        state = build_state(net, config, info, loader.steps)
        start = 0
        ckpt_path = out / SUPERNET_CHECKPOINT
        if ckpt_path.exists():
            ckpt = read_checkpoint(ckpt_path)
            if "model" not in ckpt or "optimizer" not in ckpt:
                raise ValueError(f"{ckpt_path} is not a checkpoint of this supernet training; delete it to train again")
            try:
                net.load_state_dict(ckpt["model"])
            except RuntimeError:
                raise ValueError(
                    f"{ckpt_path} holds a supernet of another layout (an earlier version of mixnet, or another "
                    "search space); delete it, or search in a new folder"
                ) from None
            start = restore_state(state, ckpt, info, seed)
            if start < epochs:
                log(f"supernet: resuming after epoch {start} of {epochs}")
        ctx = StepContext(
            optimizer=state.optimizer,
            scheduler=state.scheduler,
            loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
            dist=info,
        )
        model = distribute(_PathOfStep(net, space, seed, state.scheduler, sample), info, find_unused=True)

        def end_epoch(epoch: int, row: dict, rng: list[dict]) -> None:
            save_checkpoint(ckpt_path, {**state.state_dict(), "epoch": epoch + 1, "epochs": epochs, "rng": rng})
            log(f"supernet epoch {epoch + 1}/{epochs}: loss {row['train_loss']:.4f} ({row['epoch_seconds']:.0f} s)")

        run_epochs(model, loader, ctx, info, start_epoch=start, epochs=epochs, end_epoch=end_epoch)
    return net

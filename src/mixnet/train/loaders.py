"""The data part of a run: train/val sets, the batch fitted to them, and loaders whose order and augmentation
are a function of (seed, epoch), so a resumed run draws what an unbroken one would have.

With ``seeded_augmentation`` (the kernel study and the search's retraining turn it on), augmentation draws
from a generator of its own, seeded per sample from (seed, epoch, index) (:class:`SeededSamples`), never
from the global generator that model initialisation and dropout consume: two architectures trained with one
seed see the same images, order and augmentation, so their per-seed difference is the architecture's alone,
and the stream is the same with any number of loader workers. Off, torchvision's transforms draw from the
global generator (and, with workers, from worker seeds drawn from the epoch's loader generator).

Training shards with ``DistributedSampler`` (one shard when alone); validation with :class:`ShardSampler`,
each process evaluating its part of the set exactly once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from mixnet.data import build_datasets, eval_transform, is_builtin, train_transform
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import DistInfo, ShardSampler, broadcast_object

# BatchNorm in training mode needs more than one value per channel (a 1x1 head map at small sizes).
MIN_BATCH = 2


def loader_seed(seed: int, epoch: int, rank: int, world_size: int) -> int:
    """The seed of a process's DataLoader generator (its workers' base seeds) in ``epoch``.

    Distinct for every (epoch, rank) pair of a run, so processes do not replay each other's augmentation,
    and a function of the epoch alone, so a resumed run draws what an unbroken one would have.
    """
    return (seed * 100_003 + epoch) * world_size + rank


def fit_batch(batch_size: int, accum_steps: int, images: int, world_size: int) -> int:
    """``batch_size``, or the largest batch that gives every process one optimizer step of ``images``.

    Raises:
        ValueError: too few images for even a batch of :data:`MIN_BATCH`.
    """
    per_process = images // world_size  # DistributedSampler(drop_last=True) gives each process this many
    if batch_size * accum_steps <= per_process:
        return batch_size
    fitted = per_process // accum_steps
    if fitted < MIN_BATCH:
        raise ValueError(
            f"{images} training images are too few for a batch of {MIN_BATCH} x {accum_steps} accumulation x "
            f"{world_size} process(es)"
        )
    return fitted


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index``'s augmentation in ``epoch`` of a run with ``seed`` (a 63-bit integer)."""
    # SeedSequence hashes the triple, so nearby (seed, epoch, index) give unrelated streams.
    entropy = [seed % 2**64, epoch, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


class SeededSamples(Dataset):
    """``dataset`` with each item's random transforms drawn from a generator seeded by (seed, epoch, index).

    torchvision's transforms draw from torch's global generator; each item is read inside
    ``torch.random.fork_rng``, seeded for that item, so the global stream of the process is left as it was.

    Attributes:
        dataset: the wrapped data set (its transform applied in ``__getitem__``).
        seed: the run's seed.
        epoch: the current epoch (set by :meth:`EpochLoader.for_epoch` before each epoch's iteration).
    """

    def __init__(self, dataset: Dataset, seed: int, epoch: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only (torchvision's transforms draw from it): torch.manual_seed would reseed
            # the CUDA generators too, which fork_rng(devices=[]) does not restore.
            torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))
            return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list:
        """A batch of items; a data set whose transform draws nothing converts it at once, unseeded."""
        if getattr(self.dataset, "draws_nothing", False):
            return self.dataset.__getitems__(indices)
        return [self[i] for i in indices]


@dataclass
class EpochLoader:
    """A sharded, shuffled training loader re-seeded for each epoch (:meth:`for_epoch`).

    Attributes:
        loader: the DataLoader (full batches only: BN needs more than one image, and every rank steps equally).
        sampler: its DistributedSampler.
        generator: the loader's generator (the workers' base seeds).
        steps: optimizer steps per epoch.
        seed: the run's seed.
        info: the process placement.
    """

    loader: DataLoader
    sampler: DistributedSampler
    generator: torch.Generator
    steps: int
    seed: int
    info: DistInfo

    def for_epoch(self, epoch: int) -> DataLoader:
        """The loader, shuffled and seeded for ``epoch``."""
        self.sampler.set_epoch(epoch)
        if isinstance(self.loader.dataset, SeededSamples):
            # Set before the iterator is made: workers (not persistent) receive the dataset with this epoch.
            self.loader.dataset.epoch = epoch
        # Worker seeds are drawn from this generator: seeding it by epoch keeps whatever a worker draws outside
        # the per-sample augmentation seeds independent of how the run was split into resumed pieces.
        self.generator.manual_seed(loader_seed(self.seed, epoch, self.info.rank, self.info.world_size))
        return self.loader


def epoch_loader(
    dataset: Dataset,
    info: DistInfo,
    *,
    batch_size: int,
    seed: int,
    accum_steps: int = 1,
    workers: int = 0,
    seeded_augmentation: bool = False,
) -> EpochLoader:
    """The training loader of ``dataset`` for this process (augmentation seeded per sample when
    ``seeded_augmentation``: :class:`SeededSamples`).

    Raises:
        ValueError: fewer images than one optimizer step needs (see :func:`fit_batch`).
    """
    sampler = DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed, drop_last=True
    )
    generator = torch.Generator()
    loader = DataLoader(
        SeededSamples(dataset, seed) if seeded_augmentation else dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        drop_last=True,
        generator=generator,
    )
    steps = len(loader) // accum_steps
    if steps < 1:
        raise ValueError(
            f"{len(dataset)} training images are too few for batch {batch_size} x {accum_steps} accumulation x "
            f"{info.world_size} process(es)"
        )
    return EpochLoader(loader, sampler, generator, steps, seed, info)


def val_loader(dataset: Dataset, info: DistInfo, *, batch_size: int, workers: int = 0) -> DataLoader:
    """The validation loader: this process's shard, in order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), info.rank, info.world_size),
        num_workers=workers,
        pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )


@dataclass
class TrainData:
    """The data of a run.

    Attributes:
        train: the training loader.
        val: the validation loader.
        class_names: class names in index order.
        batch_size: the batch the loaders use (the config's, or fitted to a small set).
    """

    train: EpochLoader
    val: DataLoader
    class_names: list[str]
    batch_size: int


def build_train_data(config: TrainConfig, info: DistInfo) -> TrainData:
    """Train/val sets and loaders as ``config`` says; a set too small for the batch gets a smaller batch
    (with a warning saying so), so a small folder trains.

    Raises:
        ValueError, FileNotFoundError: bad data (named).
    """
    train_tf = train_transform(
        config.img_size,
        auto_augment=config.auto_augment,
        hflip=config.hflip,
        scale=config.crop_scale,
        interpolation=config.interpolation,
    )
    val_tf = eval_transform(config.img_size, crop_pct=config.crop_pct, interpolation=config.interpolation)
    train_ds, val_ds, class_names = build_data(config, info, train_tf, val_tf)
    batch = fit_batch(config.batch_size, config.accum_steps, len(train_ds), info.world_size)
    if batch != config.batch_size and info.is_main:
        warnings.warn(
            f"{len(train_ds)} training images are fewer than batch {config.batch_size} x {config.accum_steps} "
            f"accumulation x {info.world_size} process(es): batch size {batch} instead",
            stacklevel=2,
        )
    train = epoch_loader(
        train_ds,
        info,
        batch_size=batch,
        seed=config.seed,
        accum_steps=config.accum_steps,
        workers=config.workers,
        seeded_augmentation=config.seeded_augmentation,
    )
    val = val_loader(val_ds, info, batch_size=2 * batch, workers=config.workers)
    return TrainData(train, val, list(class_names), batch)


def build_data(config: TrainConfig, info: DistInfo, train_tf, val_tf) -> tuple:
    """Train/val sets; a folder is verified by rank 0 alone, which tells the others what to skip.

    Decoding every file once per process would multiply the start-up time by the process count. Rank 0
    checks the files (and names skipped ones in a warning); its verdict, or its error, is broadcast.
    """
    kwargs = dict(train_tf=train_tf, val_tf=val_tf, val_fraction=config.val_fraction, seed=config.seed)
    kwargs |= dict(strict=config.strict_data)
    if not info.distributed or is_builtin(config.data):
        return build_datasets(config.data, verify=config.verify_images, **kwargs)
    if info.is_main:
        try:
            train_ds, val_ds, names = build_datasets(config.data, verify=config.verify_images, **kwargs)
        except (ValueError, OSError) as e:
            broadcast_object(("error", type(e).__name__, str(e)), info)  # the others must not wait forever
            raise
        broadcast_object(("ok", dict(train_ds.skipped + val_ds.skipped)), info)
        return train_ds, val_ds, names
    verdict = broadcast_object(None, info)
    if verdict[0] == "error":
        kind = FileNotFoundError if verdict[1] == "FileNotFoundError" else ValueError
        raise kind(f"rank 0 could not build the data set: {verdict[2]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank 0 already named the skipped files
        return build_datasets(config.data, verify=False, exclude=verdict[1], **kwargs)

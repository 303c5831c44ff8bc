"""``train(config) -> TrainResult``: the whole run, from data and model to checkpoints, metrics and export.

The layout follows ConvNeXt's ``main.py`` (build everything, resume, loop over epochs calling the engine,
evaluate, save) with the pieces in their own modules. Checkpoints are written at the end of every epoch;
a resume restores model, EMA, optimizer, schedule, grad scaler, every process's RNG state and the epoch,
so with ``deterministic=True`` a run killed and resumed ends with the same weights as one never stopped.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from mixnet.data import build_datasets, eval_transform, is_builtin, train_transform
from mixnet.eval.evaluate import evaluate
from mixnet.factory import create_model
from mixnet.io.files import CheckpointError, check_state_dict
from mixnet.io.save import save_model
from mixnet.io.spec import ModelSpec, apply_to_model
from mixnet.models.preprocess import Preprocess
from mixnet.progress import show_progress
from mixnet.runtime import amp_dtype as resolve_amp_dtype
from mixnet.train.checkpoint import checkpoint_spec, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import (
    DistInfo,
    ShardSampler,
    barrier,
    broadcast_object,
    broadcast_state,
    cleanup_distributed,
    init_distributed,
    sum_across,
)
from mixnet.train.ema import create_ema
from mixnet.train.engine import StepContext, create_mix_fn, train_one_epoch
from mixnet.train.optim import create_optimizer
from mixnet.train.report import MetricsLogger, plot_curves
from mixnet.train.schedule import LrFactor, create_scheduler

CHECKPOINT_NAME = "last.pth"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        run_dir: the run folder.
        checkpoint: the last training checkpoint.
        weights: the exported .safetensors (EMA weights when the run has an EMA).
        class_names: class names in index order.
        history: one metrics row per epoch (this run's and, after a resume, the earlier ones).
        seconds: wall time of this call.
    """

    run_dir: Path
    checkpoint: Path
    weights: Path
    class_names: list[str]
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> dict:
        """The last epoch's metrics."""
        return self.history[-1] if self.history else {}


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype for ``amp`` on ``device`` (None: full precision); unsupported choices raise.

    :func:`mixnet.runtime.amp_dtype`, plus the training-only rule that fp16 needs CUDA (its grad scaler).
    """
    dtype = resolve_amp_dtype(amp, device)
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("amp fp16 needs a CUDA device (its grad scaler); use --amp bf16 or none on the CPU")
    return dtype


def loader_seed(seed: int, epoch: int, rank: int, world_size: int) -> int:
    """The seed of a process's DataLoader generator (its workers' base seeds) in ``epoch``.

    Distinct for every (epoch, rank) pair of a run, so processes do not replay each other's augmentation,
    and a function of the epoch alone, so a resumed run draws what an uninterrupted one would have.
    """
    return (seed * 100_003 + epoch) * world_size + rank


def build_model(config: TrainConfig, num_classes: int) -> torch.nn.Module:
    """The model the config describes, with the paper's BN settings, optional initial weights, and the run's
    eval preprocessing in its ``pretrained_cfg`` (so the files it is saved to record it)."""
    overrides = {k: v for k in ("width_mult", "head_channels") if (v := getattr(config, k)) is not None}
    pretrained: bool | str = False
    if config.weights and not config.resume:  # a resumed run takes its weights from the checkpoint
        pretrained = True if config.weights == "hub" else config.weights
    model = create_model(
        config.arch or config.model,
        pretrained=pretrained,
        num_classes=num_classes,
        drop_rate=config.drop_rate,
        drop_path_rate=config.drop_path_rate,
        bn_momentum=config.bn_momentum,
        bn_eps=config.bn_eps,
        kernels=config.kernels,
        **overrides,
    )
    if config.head_init_scale != 1.0 and not config.weights and isinstance(model.classifier, torch.nn.Linear):
        with torch.no_grad():
            model.classifier.weight.mul_(config.head_init_scale)
            model.classifier.bias.mul_(config.head_init_scale)
    pre = Preprocess(img_size=config.img_size, crop_pct=config.crop_pct, interpolation=config.interpolation)
    apply_to_model(model, ModelSpec.from_model(model, preprocess=pre))
    return model


def check_resume(ckpt: dict, path: str, config: TrainConfig, class_names: list[str], model: torch.nn.Module) -> None:
    """Raises CheckpointError naming the mismatch when ``ckpt`` cannot continue this run."""
    saved_spec = checkpoint_spec(ckpt, path)
    expected = None if config.arch else config.model  # an architecture file's model records no registered name
    if saved_spec.architecture != expected:
        theirs, ours = saved_spec.architecture or "architecture-file", config.arch or config.model
        raise CheckpointError(f"checkpoint {path!r} is from a {theirs} run, but this run builds {ours}")
    saved = list(saved_spec.class_names or [])
    if saved != list(class_names):
        raise CheckpointError(
            f"checkpoint {path!r} has {len(saved)} classes {saved[:10]}, but the data has {len(class_names)} "
            f"classes {list(class_names)[:10]}"
        )
    # The optimizer's state (RMSProp's mean square, Adam's moments) only fits the optimizer that wrote it.
    saved_opt = (ckpt.get("args") or {}).get("opt")
    if saved_opt is not None and saved_opt != config.opt:
        raise CheckpointError(
            f"checkpoint {path!r} was trained with opt {saved_opt!r}, but this run uses {config.opt!r}: the "
            "optimizer state cannot carry over (resume with the same --opt, or start a new run with "
            f"--weights {path})"
        )
    check_state_dict(model, ckpt["model"], f"checkpoint {path!r}")


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    ckpt: dict,
    *,
    verbose: bool = True,
) -> list[str]:
    """Loads the checkpoint's optimizer state and schedule position, keeping this run's hyperparameters.

    ``optimizer`` and ``scheduler`` are built from this run's config; ``load_state_dict`` would bring back
    the saved lr, weight decay, momentum and eps with the state, silently overriding options given with
    the resume. So the config's values (per group: the no-decay group keeps weight decay 0) are put back,
    the schedule's base lrs become this run's peak lr, and the current lr follows from the restored position.

    Returns:
        One line per hyperparameter that differs from the checkpoint's (also printed when ``verbose``).
    """
    fresh = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in optimizer.param_groups]
    optimizer.load_state_dict(ckpt["optimizer"])
    # The schedule's shape comes from this run's config (so --epochs can extend a run); only the
    # position and base lrs are restored.
    scheduler.load_state_dict({**ckpt["scheduler"], "lr_lambdas": [None]})
    changes: list[str] = []
    for i, (group, wanted) in enumerate(zip(optimizer.param_groups, fresh, strict=True)):
        for key, value in wanted.items():
            old = scheduler.base_lrs[i] if key == "initial_lr" else group.get(key)
            if old != value:
                name = "lr" if key == "initial_lr" else key
                changes.append(f"param group {i}: {name} {old} -> {value}")
            group[key] = value
    scheduler.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
    factor = scheduler.lr_lambdas[0]
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor(scheduler.last_epoch)
    if changes and verbose:
        print("resume: this run's options replace the checkpoint's: " + "; ".join(changes), flush=True)
    return changes


def _run_dir(config: TrainConfig, info: DistInfo) -> Path:
    if config.out:
        path = Path(config.out)
    elif config.resume:
        path = Path(config.resume).parent
    else:
        name = Path(config.arch).stem if config.arch else config.model
        path = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(broadcast_object(str(path), info))  # one folder even if the ranks' clocks differ


def _gather_rng(info: DistInfo) -> list[dict]:
    state = rng_state()
    if not info.distributed:
        return [state]
    states: list = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def _restore_rng(states: list[dict], info: DistInfo, seed: int) -> None:
    if len(states) == info.world_size:
        set_rng_state(states[info.rank])
    else:
        warnings.warn(
            f"the checkpoint holds RNG states of {len(states)} process(es), this run has {info.world_size}: "
            "reseeding (the run continues, but not bit-exactly as it would have)",
            stacklevel=3,
        )
        torch.manual_seed(seed + 7919 * (info.rank + 1))


def train(config: TrainConfig) -> TrainResult:
    """Trains a MixNet as ``config`` says; under torchrun, every process calls this.

    Returns:
        The run's :class:`TrainResult` (on every rank; only rank 0 writes files).

    Raises:
        ValueError: a bad option or data folder.
        mixnet.io.files.CheckpointError: a ``resume`` checkpoint or ``weights`` file that does not fit.
        mixnet.train.engine.NonFiniteLossError: the loss became NaN/inf (the last checkpoint is kept).
        OSError: a checkpoint could not be written (the previous one is kept).
    """
    config.validate()
    start = time.perf_counter()
    info = init_distributed(config.device)
    was_deterministic, was_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    was_benchmark = torch.backends.cudnn.benchmark
    logger = None
    try:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed + info.rank)
        ckpt = load_checkpoint(config.resume) if config.resume else None
        run_dir = _run_dir(config, info)
        amp_dtype = resolve_amp(config.amp, info.device)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            config.save(run_dir / "config.json")

        # Data: train/val sets, a sharding sampler (one shard when alone) and per-epoch seeded loaders.
        train_tf = train_transform(
            config.img_size,
            auto_augment=config.auto_augment,
            hflip=config.hflip,
            scale=config.crop_scale,
            interpolation=config.interpolation,
        )
        val_tf = eval_transform(config.img_size, crop_pct=config.crop_pct, interpolation=config.interpolation)
        train_ds, val_ds, class_names = _build_data(config, info, train_tf, val_tf)
        sampler = DistributedSampler(
            train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed, drop_last=True
        )
        loader_gen = torch.Generator()
        pin = info.device.type == "cuda"
        train_loader = DataLoader(
            train_ds,
            batch_size=config.batch_size,
            sampler=sampler,
            num_workers=config.workers,
            pin_memory=pin,
            drop_last=True,  # BN needs more than one image; equal step counts on every rank
            generator=loader_gen,
        )
        steps_per_epoch = len(train_loader) // config.accum_steps
        if steps_per_epoch < 1:
            raise ValueError(
                f"{len(train_ds)} training images are too few for batch {config.batch_size} x "
                f"{config.accum_steps} accumulation x {info.world_size} process(es)"
            )
        val_loader = DataLoader(
            val_ds,
            batch_size=2 * config.batch_size,
            sampler=ShardSampler(len(val_ds), info.rank, info.world_size),  # each process evaluates its shard
            num_workers=config.workers,
            pin_memory=pin,
            generator=torch.Generator().manual_seed(0),
        )

        # Model, EMA, optimizer, schedule, scaler. Only rank 0 updates the EMA (it alone saves it); the other
        # processes hold a copy that receives rank 0's before each (sharded) evaluation.
        model = build_model(config, len(class_names))
        if ckpt is not None:
            check_resume(ckpt, config.resume, config, class_names, model)
            model.load_state_dict(ckpt["model"])
        fmt = torch.channels_last if config.channels_last else torch.contiguous_format
        model.to(info.device, memory_format=fmt)
        ema = create_ema(model, config.ema_decay) if config.ema_decay > 0 else None
        optimizer = create_optimizer(
            model,
            config.opt,
            config.peak_lr(info.world_size),
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            rms_decay=config.rms_decay,
            eps=config.opt_eps,
        )
        factor = LrFactor(
            config.sched,
            steps_per_epoch,
            config.epochs,
            warmup_epochs=config.warmup_epochs,
            decay_epochs=config.decay_epochs,
            decay_rate=config.decay_rate,
            min_lr_ratio=config.min_lr_ratio,
        )
        scheduler = create_scheduler(optimizer, factor)
        scaler = torch.amp.GradScaler(info.device.type) if amp_dtype == torch.float16 else None
        start_epoch = 0
        if ckpt is not None:
            start_epoch = int(ckpt["epoch"])
            restore_optimizer(optimizer, scheduler, ckpt, verbose=info.is_main)
            if scaler is not None and ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            if ema is not None:
                if ckpt.get("model_ema") is None:
                    warnings.warn("the checkpoint has no EMA weights: the EMA restarts from the model", stacklevel=2)
                    ema.module.load_state_dict(ckpt["model"])
                else:
                    ema.module.load_state_dict(ckpt["model_ema"])
                ema.n_averaged.fill_(int(ckpt.get("ema_updates", ckpt.get("step", 0))))
            _restore_rng(ckpt.get("rng") or [], info, config.seed)
        raw_model = model
        if info.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[info.device] if info.device.type == "cuda" else None
            )
        if config.compile:
            model = torch.compile(model)

        ctx = StepContext(
            optimizer=optimizer,
            scheduler=scheduler,
            loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
            dist=info,
            ema=ema if info.is_main else None,
            scaler=scaler,
            amp_dtype=amp_dtype,
            accum_steps=config.accum_steps,
            channels_last=config.channels_last,
            grad_clip=config.grad_clip,
            mix_fn=create_mix_fn(config.mixup, config.cutmix, len(class_names)),
            raw_model=raw_model,
        )
        if info.is_main:
            logger = MetricsLogger(run_dir, start_epoch)
        checkpoint_path = run_dir / CHECKPOINT_NAME
        progress = show_progress(config.progress)
        spec = ModelSpec.from_model(raw_model, class_names=class_names)
        for epoch in range(start_epoch, config.epochs):
            t0 = time.perf_counter()
            sampler.set_epoch(epoch)
            # Worker seeds are drawn from this generator: seeding it by epoch makes augmentation with
            # workers independent of how the run was split into resumed pieces.
            loader_gen.manual_seed(loader_seed(config.seed, epoch, info.rank, info.world_size))
            row: dict = {"epoch": epoch + 1}
            row |= train_one_epoch(model, train_loader, ctx, epoch=epoch, steps=steps_per_epoch, progress=progress)
            last = epoch + 1 == config.epochs
            if (epoch + 1) % config.eval_every == 0 or last:
                row |= _evaluate(raw_model, ema, val_loader, info, amp_dtype, config)
            rng = _gather_rng(info)
            if info.is_main:
                row["epoch_seconds"] = time.perf_counter() - t0
                row["elapsed_seconds"] = time.perf_counter() - start
                # Metrics first: a kill during the save leaves a row that the resume drops and redoes.
                logger.log(row)
                _print_epoch(row, config.epochs)
                save_checkpoint(
                    checkpoint_path,
                    {
                        "spec": spec.to_dict(),
                        "model": raw_model.state_dict(),
                        "model_ema": ema.module.state_dict() if ema is not None else None,
                        "ema_updates": int(ema.n_averaged) if ema is not None else 0,
                        "args": config.to_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "epoch": epoch + 1,
                        "step": (epoch + 1) * steps_per_epoch,
                        "rng": rng,
                    },
                )
            barrier(info)

        weights = run_dir / WEIGHTS_NAME
        history = logger.rows if logger is not None else []
        if info.is_main:
            final = ema.module if ema is not None else raw_model
            save_model(weights, final.state_dict(), spec)
            plot_curves(history, run_dir)
        barrier(info)
        return TrainResult(
            run_dir, checkpoint_path, weights, list(class_names), list(history), time.perf_counter() - start
        )
    finally:
        if logger is not None:
            logger.close()
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(was_threads)
        torch.backends.cudnn.benchmark = was_benchmark
        cleanup_distributed(info)


def _build_data(config: TrainConfig, info: DistInfo, train_tf, val_tf) -> tuple:
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


def _evaluate(model, ema, loader, info: DistInfo, amp_dtype, config: TrainConfig) -> dict:
    """Held-out metrics of the model (and EMA) on the whole val set, each process evaluating its shard."""
    row = {}
    for prefix, net in (("", model), ("ema_", ema.module if ema is not None else None)):
        if net is None:
            continue
        broadcast_state(net, info)  # rank 0's BN statistics and EMA: the weights it saves
        m = evaluate(
            net,
            loader,
            device=info.device,
            amp_dtype=amp_dtype,
            channels_last=config.channels_last,
            progress=show_progress(config.progress) and info.is_main,
            sum_across=(lambda t: sum_across(t, info)) if info.distributed else None,
        )
        k = m["k"]
        row |= {f"{prefix}val_top1": m["top1"], f"{prefix}val_top{k}": m[f"top{k}"], f"{prefix}val_loss": m["loss"]}
    return row


def _print_epoch(row: dict, epochs: int) -> None:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4f}", f"lr {row['lr']:.3g}"]
    parts.append(f"{row['images_per_s']:.0f} img/s")
    for key, label in (("val_top1", "val top-1"), ("ema_val_top1", "EMA val top-1")):
        if key in row:
            parts.append(f"{label} {row[key]:.2f}%")
    parts.append(f"{row['epoch_seconds']:.1f}s")
    print(" | ".join(parts), flush=True)

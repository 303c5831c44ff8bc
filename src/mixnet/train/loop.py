"""``train(config) -> TrainResult``: the whole run, from data and model to checkpoints, metrics and export.

The layout follows ConvNeXt's ``main.py`` (build everything, resume, loop over epochs calling the engine,
evaluate, save) with the parts in their own modules: the data (:mod:`.loaders`), the model and optimizer
(:mod:`.state`), the restore (:mod:`.resume`) and here the epoch loop (:func:`run_epochs`), which the
search's supernet training uses too. Checkpoints are written at the end of every epoch; a resume restores
model, EMA, optimizer, schedule, grad scaler, every process's RNG state and the epoch, so with
``deterministic=True`` a run killed and resumed ends with the same weights as one never stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from mixnet.eval.evaluate import evaluate
from mixnet.io.save import save_model
from mixnet.io.spec import ModelSpec
from mixnet.measure.threads import threads as thread_count
from mixnet.progress import show_progress
from mixnet.runtime import amp_dtype as resolve_amp_dtype
from mixnet.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import (
    DistInfo,
    barrier,
    broadcast_object,
    broadcast_state,
    cleanup_distributed,
    init_distributed,
    sum_across,
)
from mixnet.train.engine import StepContext, create_mix_fn, train_one_epoch
from mixnet.train.loaders import EpochLoader, build_train_data
from mixnet.train.report import MetricsLogger, plot_curves
from mixnet.train.resume import check_resume, gather_rng, restore_state
from mixnet.train.state import build_model, build_state, distribute

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


def _run_dir(config: TrainConfig, info: DistInfo) -> Path:
    if config.out:
        path = Path(config.out)
    elif config.resume:
        path = Path(config.resume).parent
    else:
        name = Path(config.arch).stem if config.arch else config.model
        path = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(broadcast_object(str(path), info))  # one folder even if the ranks' clocks differ


def run_epochs(
    model: nn.Module,
    loader: EpochLoader,
    ctx: StepContext,
    info: DistInfo,
    *,
    start_epoch: int,
    epochs: int,
    end_epoch: Callable[[int, dict, list[dict]], None],
    evaluate_epoch: Callable[[int], dict] | None = None,
    progress: bool = False,
) -> None:
    """The epoch loop: train an epoch, evaluate (if asked), then let rank 0 record and save it.

    Args:
        model: the model to train (wrapped for DDP/compile as needed).
        loader: the training loader, re-seeded for each epoch.
        ctx: what every step needs (optimizer, schedule, loss, ...).
        info: the process placement.
        start_epoch: epochs already done (a resume's).
        epochs: the run's length.
        end_epoch: on rank 0 after each epoch: ``(epoch, metrics row, every process's RNG state)``; the row
            has ``epoch`` (1-based), the engine's metrics, the evaluation's and ``epoch_seconds``.
        evaluate_epoch: ``epoch -> metrics``, called on every process after the epoch's training.
        progress: progress bars.
    """
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        row: dict = {"epoch": epoch + 1}
        row |= train_one_epoch(model, loader.for_epoch(epoch), ctx, epoch=epoch, steps=loader.steps, progress=progress)
        if evaluate_epoch is not None:
            row |= evaluate_epoch(epoch)
        rng = gather_rng(info)  # every process takes part
        if info.is_main:
            row["epoch_seconds"] = time.perf_counter() - t0
            end_epoch(epoch, row, rng)
        barrier(info)


def train(config: TrainConfig) -> TrainResult:
    """Trains a MixNet as ``config`` says; under torchrun, every process calls this.

    Everything that can refuse the run (the checkpoint to resume, the precision, the data, the model and its
    weights) is checked before the run folder is made, so a refused run leaves nothing behind. A data set
    smaller than one batch per process trains with a smaller batch (a warning says so; config.json records it).

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
    try:
        with _process_settings(config):
            return _train(config, info, start)
    finally:
        cleanup_distributed(info)


@contextlib.contextmanager
def _process_settings(config: TrainConfig) -> Iterator[None]:
    """Deterministic algorithms and the thread count for the run; the caller's settings are restored after."""
    was_deterministic, was_benchmark = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        with thread_count(config.threads or None):
            yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)
        torch.backends.cudnn.benchmark = was_benchmark
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def _train(config: TrainConfig, info: DistInfo, start: float) -> TrainResult:
    torch.manual_seed(config.seed + info.rank)
    ckpt = load_checkpoint(config.resume) if config.resume else None
    amp_dtype = resolve_amp(config.amp, info.device)
    data = build_train_data(config, info)
    if data.batch_size != config.batch_size:
        config = config.replace(batch_size=data.batch_size)
    class_names = data.class_names
    model = build_model(config, len(class_names))
    if ckpt is not None:
        check_resume(ckpt, config.resume, config, class_names, model)
        model.load_state_dict(ckpt["model"])
    run_dir = _run_dir(config, info)
    state = build_state(model, config, info, data.train.steps, amp_dtype)
    start_epoch = restore_state(state, ckpt, info, config.seed) if ckpt is not None else 0
    if info.is_main:
        # Written once everything (a resume included) has been restored, so a refused resume keeps the record.
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
    if start_epoch >= config.epochs and info.is_main:
        done = (
            f"complete at epoch {start_epoch}/{config.epochs}"
            if start_epoch == config.epochs
            else (f"at epoch {start_epoch}, past --epochs {config.epochs}")
        )
        print(f"{config.resume} is already {done}: nothing to train (give a larger --epochs to train on)", flush=True)
    raw_model, ema = state.model, state.ema
    ctx = StepContext(
        optimizer=state.optimizer,
        scheduler=state.scheduler,
        loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        dist=info,
        ema=ema if info.is_main else None,
        scaler=state.scaler,
        amp_dtype=amp_dtype,
        accum_steps=config.accum_steps,
        channels_last=config.channels_last,
        grad_clip=config.grad_clip,
        mix_fn=create_mix_fn(config.mixup, config.cutmix, len(class_names)),
        raw_model=raw_model,
    )
    checkpoint_path = run_dir / CHECKPOINT_NAME
    spec = ModelSpec.from_model(raw_model, class_names=class_names)
    logger = MetricsLogger(run_dir, start_epoch) if info.is_main else None

    def evaluate_epoch(epoch: int) -> dict:
        last = epoch + 1 == config.epochs
        if (epoch + 1) % config.eval_every == 0 or last:
            skip_raw = config.eval_ema_only and ema is not None and not last
            return _evaluate(None if skip_raw else raw_model, ema, data.val, info, amp_dtype, config)
        return {}

    def end_epoch(epoch: int, row: dict, rng: list[dict]) -> None:
        row["elapsed_seconds"] = time.perf_counter() - start
        # Metrics first: a kill during the save leaves a row that the resume drops and redoes.
        logger.log(row)
        _print_epoch(row, config.epochs)
        ckpt = {"spec": spec.to_dict(), **state.state_dict(), "args": config.to_dict()}
        ckpt |= {"epoch": epoch + 1, "step": (epoch + 1) * data.train.steps, "rng": rng}
        save_checkpoint(checkpoint_path, ckpt)

    try:
        run_epochs(
            distribute(raw_model, info, compile=config.compile),
            data.train,
            ctx,
            info,
            start_epoch=start_epoch,
            epochs=config.epochs,
            end_epoch=end_epoch,
            evaluate_epoch=evaluate_epoch,
            progress=show_progress(config.progress),
        )
        weights = run_dir / WEIGHTS_NAME
        history = logger.rows if logger is not None else []
        if info.is_main:
            final = ema.module if ema is not None else raw_model
            save_model(weights, final.state_dict(), spec)
            plot_curves(history, run_dir)
        barrier(info)
    finally:
        if logger is not None:
            logger.close()
    return TrainResult(run_dir, checkpoint_path, weights, list(class_names), list(history), time.perf_counter() - start)


def _evaluate(model, ema, loader: DataLoader, info: DistInfo, amp_dtype, config: TrainConfig) -> dict:
    """Held-out metrics of the model (None: skipped) and the EMA on the whole val set, each process evaluating
    its shard."""
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

"""The model/optimizer part of a run: the model, its EMA, the optimizer, the lr schedule and the grad scaler,
held together as one :class:`TrainState` that writes (and, with :mod:`mixnet.train.resume`, restores) the
training part of a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mixnet.factory import create_model
from mixnet.io.spec import ModelSpec, apply_to_model
from mixnet.models.preprocess import Preprocess
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import DistInfo
from mixnet.train.ema import create_ema
from mixnet.train.optim import create_optimizer
from mixnet.train.schedule import LrFactor, create_scheduler


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
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
    if config.head_init_scale != 1.0 and not config.weights and isinstance(model.classifier, nn.Linear):
        with torch.no_grad():
            model.classifier.weight.mul_(config.head_init_scale)
            model.classifier.bias.mul_(config.head_init_scale)
    pre = Preprocess(img_size=config.img_size, crop_pct=config.crop_pct, interpolation=config.interpolation)
    apply_to_model(model, ModelSpec.from_model(model, preprocess=pre))
    return model


@dataclass
class TrainState:
    """What an optimizer step changes, besides the RNGs.

    Attributes:
        model: the model, unwrapped (what is saved and what the EMA averages).
        optimizer: the optimizer.
        scheduler: the per-step lr schedule.
        ema: the weight EMA, or None.
        scaler: the fp16 grad scaler, or None.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: torch.optim.swa_utils.AveragedModel | None = None
    scaler: torch.amp.GradScaler | None = None

    def state_dict(self) -> dict:
        """The checkpoint entries of the state (the schedule's shape is the config's, so it is not saved)."""
        return {
            "model": self.model.state_dict(),
            "model_ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_updates": int(self.ema.n_averaged) if self.ema is not None else 0,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }


def distribute(model: nn.Module, info: DistInfo, *, compile: bool = False, find_unused: bool = False) -> nn.Module:  # noqa: A002
    """The module to train: under DistributedDataParallel when distributed, compiled if asked.

    ``find_unused``: parameters may get no gradient in a step (a supernet path leaves the other choices' unused).
    """
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device] if info.device.type == "cuda" else None, find_unused_parameters=find_unused
        )
    return torch.compile(model) if compile else model


def build_state(
    model: nn.Module,
    config: TrainConfig,
    info: DistInfo,
    steps_per_epoch: int,
    amp_dtype: torch.dtype | None = None,
) -> TrainState:
    """Moves ``model`` to the device and builds its EMA, optimizer, schedule and scaler as ``config`` says.

    Only rank 0 updates the EMA (it alone saves it); the other processes hold a copy that receives rank 0's
    before each (sharded) evaluation.
    """
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
    return TrainState(model, optimizer, scheduler, ema, scaler)

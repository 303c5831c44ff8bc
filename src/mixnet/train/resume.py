"""The restore part of a run: checking that a checkpoint can continue this run, and putting its optimizer,
schedule position, scaler, EMA and every process's RNG state back, so that with ``deterministic=True`` a run
killed and resumed ends with the same weights as one never stopped.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn

from mixnet.io.files import CheckpointError, check_state_dict
from mixnet.train.checkpoint import checkpoint_spec, rng_state, set_rng_state
from mixnet.train.config import TrainConfig
from mixnet.train.distributed import DistInfo
from mixnet.train.state import TrainState


def check_resume(ckpt: dict, path: str, config: TrainConfig, class_names: list[str], model: nn.Module) -> None:
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
    # A resumed run must draw its augmentation as it started, or its epochs mix two data streams.
    saved_seeded = bool((ckpt.get("args") or {}).get("seeded_augmentation", False))
    if saved_seeded != config.seeded_augmentation:
        raise CheckpointError(
            f"checkpoint {path!r} was trained with seeded_augmentation={saved_seeded}, but this run uses "
            f"{config.seeded_augmentation}: resume with the same setting"
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


def restore_state(state: TrainState, ckpt: dict, info: DistInfo, seed: int) -> int:
    """Puts a checkpoint's training state back into ``state`` (the model's weights are loaded already) and
    this process's RNG state; returns the epochs the checkpoint had done."""
    restore_optimizer(state.optimizer, state.scheduler, ckpt, verbose=info.is_main)
    if state.scaler is not None and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    if state.ema is not None:
        if ckpt.get("model_ema") is None:
            warnings.warn("the checkpoint has no EMA weights: the EMA restarts from the model", stacklevel=2)
            state.ema.module.load_state_dict(ckpt["model"])
        else:
            state.ema.module.load_state_dict(ckpt["model_ema"])
        state.ema.n_averaged.fill_(int(ckpt.get("ema_updates", ckpt.get("step", 0))))
    restore_rng(ckpt.get("rng") or [], info, seed)
    return int(ckpt["epoch"])


def gather_rng(info: DistInfo) -> list[dict]:
    """Every process's RNG state, in rank order (on every process)."""
    state = rng_state()
    if not info.distributed:
        return [state]
    states: list = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def restore_rng(states: list[dict], info: DistInfo, seed: int) -> None:
    """This process's saved RNG state; a checkpoint from another process count reseeds (with a warning)."""
    if len(states) == info.world_size:
        set_rng_state(states[info.rank])
    else:
        warnings.warn(
            f"the checkpoint holds RNG states of {len(states)} process(es), this run has {info.world_size}: "
            "reseeding (the run continues, but not bit-exactly as it would have)",
            stacklevel=3,
        )
        torch.manual_seed(seed + 7919 * (info.rank + 1))

"""Training MixNets: the paper's recipe (TF RMSProp, warmup + staircase decay, EMA) or a short one, on one
process or many (torchrun + DDP), with exact resume, atomic checkpoints and a .safetensors model file.

Modules, each one idea (ConvNeXt/timm layout): ``config`` (TrainConfig, presets), ``optim`` (RMSpropTF,
weight-decay groups), ``schedule`` (warmup + step/cosine on LambdaLR), ``ema`` (TF-style EMA on
AveragedModel), ``checkpoint`` (training checkpoints, RNG state), ``distributed`` (torchrun/DDP),
``engine`` (one epoch), ``loaders`` (the data part of a run), ``state`` (model, EMA, optimizer, schedule,
scaler), ``resume`` (restoring them), ``report`` (metrics files, plots), ``loop`` (``train`` and the epoch
loop), ``demo`` (the main job).
The names below are imported on first use, so reading a configuration does not import the data stack.
"""

import importlib

_EXPORTS = {
    "PRESETS": "mixnet.train.config",
    "TrainConfig": "mixnet.train.config",
    "NonFiniteLossError": "mixnet.train.engine",
    "TrainResult": "mixnet.train.loop",
    "train": "mixnet.train.loop",
    "RMSpropTF": "mixnet.train.optim",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mixnet.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

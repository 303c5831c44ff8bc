"""Training MixNets: the paper's recipe (TF RMSProp, warmup + staircase decay, EMA) or a short one, on one
process or many (torchrun + DDP), with exact resume, atomic checkpoints and a .safetensors export.

Modules, each one idea (ConvNeXt/timm layout): ``config`` (TrainConfig, presets), ``optim`` (RMSpropTF,
weight-decay groups), ``schedule`` (warmup + step/cosine on LambdaLR), ``ema`` (TF-style EMA on
AveragedModel), ``checkpoint`` (atomic save, RNG state, export), ``distributed`` (torchrun/DDP),
``engine`` (one epoch), ``report`` (metrics files, plots), ``loop`` (``train``), ``demo`` (the main job).
"""

from mixnet.train.config import PRESETS, TrainConfig
from mixnet.train.engine import NonFiniteLossError
from mixnet.train.loop import TrainResult, train
from mixnet.train.optim import RMSpropTF

__all__ = ["PRESETS", "NonFiniteLossError", "RMSpropTF", "TrainConfig", "TrainResult", "train"]

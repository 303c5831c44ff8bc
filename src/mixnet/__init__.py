"""mixnet: MixConv and MixNet (Tan & Le, 2019), exact to the paper and equal to the reference.

The core (``import mixnet``, ``create_model``, the layers, models, model files and the inference
rewrite) needs only torch, numpy and safetensors; training, data, export and benchmarks import their
extra dependencies when used.
"""

from mixnet.deploy.optimize import optimize_for_inference
from mixnet.factory import create_model
from mixnet.io import ModelSpec, load_model, save_model
from mixnet.layers import MixConv2d
from mixnet.models import (
    BlockArgs,
    FeatureInfo,
    MixNet,
    MixNetConfig,
    MixNetFeatures,
    Preprocess,
    complexity,
    format_block,
    list_models,
    parse_block,
)

__version__ = "0.2.0"

__all__ = [
    "BlockArgs",
    "FeatureInfo",
    "MixConv2d",
    "MixNet",
    "MixNetConfig",
    "MixNetFeatures",
    "ModelSpec",
    "Preprocess",
    "complexity",
    "create_model",
    "format_block",
    "list_models",
    "load_model",
    "optimize_for_inference",
    "parse_block",
    "save_model",
]

"""mixnet: MixConv and MixNet (Tan & Le, 2019), exact to the paper and equal to the reference."""

from mixnet.arch import BlockArgs, format_block, parse_block
from mixnet.configs import MixNetConfig
from mixnet.layers import MixConv2d
from mixnet.model import MixNet
from mixnet.optimize import optimize_for_inference
from mixnet.registry import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "BlockArgs",
    "MixConv2d",
    "MixNet",
    "MixNetConfig",
    "create_model",
    "format_block",
    "list_models",
    "optimize_for_inference",
    "parse_block",
]

"""Building blocks of MixNet. Layers never import models."""

from mixnet.layers.drop_path import DropPath
from mixnet.layers.mixconv import MixConv2d, split_channels
from mixnet.layers.padding import SameConv2d, create_conv2d, same_pad_amounts
from mixnet.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "DropPath",
    "MixConv2d",
    "SameConv2d",
    "SqueezeExcite",
    "create_conv2d",
    "same_pad_amounts",
    "split_channels",
]

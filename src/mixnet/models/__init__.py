"""The MixNet family as data and modules: block strings, configs, the network, the registry, complexity.

Depends only on :mod:`mixnet.layers`; nothing here reads files or imports training, data or export code.
"""

from mixnet.models.arch import BlockArgs, format_block, parse_block
from mixnet.models.complexity import Complexity, complexity
from mixnet.models.configs import MixNetConfig
from mixnet.models.features import FeatureInfo
from mixnet.models.mixnet import MixBlock, MixNet, MixNetFeatures
from mixnet.models.preprocess import Preprocess
from mixnet.models.registry import get_entry, list_models

__all__ = [
    "BlockArgs",
    "Complexity",
    "FeatureInfo",
    "MixBlock",
    "MixNet",
    "MixNetConfig",
    "MixNetFeatures",
    "Preprocess",
    "complexity",
    "format_block",
    "get_entry",
    "list_models",
    "parse_block",
]

"""The ImageNet-1k class names, for 1000-class weights that carry no names of their own.

The list shipped with the package (``imagenet_classes.txt``) is torchvision's, in the standard
class-index order of timm's and torchvision's 1000-class weights.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order."""
    text = resources.files("mixnet.io").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line for line in text.splitlines() if line]
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(names)} names, not 1000: the package is damaged")
    return names

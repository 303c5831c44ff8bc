"""Cued digits: several digits far apart on a canvas and a cue mark; the label is the digit nearest the cue.

A task whose answer depends on pixels far apart, so that a net's receptive field matters: no digit ink
lies within ``gap`` pixels of the cue, so a window that shows the cue and spans less than that shows no
digit, and every digit is as likely to be the marked one, so the digits a window sees do not say which one
is meant. Only a unit that sees the cue and the digit nearest to it together (or combines what separate units saw by
where they saw it) can answer. The idea follows the long-range spatial tasks of the Long Range Arena (Tay
et al. 2021, "Long Range Arena", its Pathfinder task) and the cue-based attention tasks of the
cluttered-MNIST literature, built from the digits that ship here.

The built-in set (``cued-digits``) draws the digits at half size (14 px) on 48x48 canvases with a 4 px cue at
least 6 px from any digit: the marked digit's centre lies 15 to 34 px from the cue (median 19, measured on 2,000
canvases), so a unit must see a window of about 30 px or more of the 48 to answer, while the canvas stays small
enough to train on a CPU.

Each canvas holds ``digits`` images of distinct classes (non-overlapping boxes) and a hollow square cue;
the nearest digit (by box centre) is nearer than the second by at least ``margin`` pixels, so the label is
never a close call. Train canvases take their digits only from the train split of the built-in digits and
val canvases only from the held-out split, so no val digit image is ever seen in training. Everything is
seeded: the same arguments give the same canvases in every process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixnet.data import digits

CUED = "cued-digits"
CANVAS, DIGITS, CUE, GAP, MARGIN = 48, 3, 4, 6, 3
DIGIT_SIDE = 14  # the built-in 28 px digits at half size
TRAIN_SIZE, VAL_SIZE = 9000, 2000
_TRIES = 1000


@dataclass(frozen=True)
class CuedLayout:
    """Where a canvas's pieces are.

    Attributes:
        boxes: top-left (y, x) of each digit's box, (digits, 2).
        sources: index of each digit's image in the source array.
        cue: top-left (y, x) of the cue.
        marked: which of the digits is nearest the cue.
    """

    boxes: np.ndarray
    sources: np.ndarray
    cue: tuple[int, int]
    marked: int


def _box_gap(cy: float, cx: float, boxes: np.ndarray, side: int) -> np.ndarray:
    """Distance from a point to each box (0 inside)."""
    dy = np.maximum(np.maximum(boxes[:, 0] - cy, cy - (boxes[:, 0] + side - 1)), 0)
    dx = np.maximum(np.maximum(boxes[:, 1] - cx, cx - (boxes[:, 1] + side - 1)), 0)
    return np.hypot(dy, dx)


def _layout(rng, by_class: list[np.ndarray], side: int, p) -> CuedLayout | None:
    """One random layout meeting the constraints, or None when this draw cannot host a cue."""
    classes = rng.choice([c for c in range(10) if len(by_class[c])], size=p["digits"], replace=False)
    sources = np.array([rng.choice(by_class[c]) for c in classes])
    boxes: list[tuple[int, int]] = []
    for _ in range(_TRIES):
        y, x = rng.integers(0, p["canvas"] - side + 1, 2)
        if all(abs(y - by) >= side or abs(x - bx) >= side for by, bx in boxes):
            boxes.append((int(y), int(x)))
            if len(boxes) == p["digits"]:
                break
    if len(boxes) < p["digits"]:
        return None
    arr = np.array(boxes)
    centres = arr + (side - 1) / 2
    half = (p["cue"] - 1) / 2
    for _ in range(_TRIES // 10):
        cy, cx = rng.integers(0, p["canvas"] - p["cue"] + 1, 2)
        # The whole cue must stay `gap` from every box: measure from its centre, less its half-diagonal.
        if _box_gap(cy + half, cx + half, arr, side).min() - half * np.sqrt(2) < p["gap"]:
            continue
        dist = np.hypot(*(centres - (cy + half, cx + half)).T)
        first, second = np.sort(dist)[:2]
        if second - first >= p["margin"]:
            return CuedLayout(arr, sources, (int(cy), int(cx)), int(np.argmin(dist)))
    return None


def cued(
    images: np.ndarray,
    labels: np.ndarray,
    n: int,
    *,
    canvas: int = CANVAS,
    digits: int = DIGITS,
    cue: int = CUE,
    gap: int = GAP,
    margin: int = MARGIN,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[CuedLayout]]:
    """``n`` canvases with ``digits`` digits of distinct classes from ``images`` and a cue; label: the nearest digit.

    Args:
        images: uint8 (N, side, side), the digits of one split (the only source of this set's digits).
        labels: their classes 0..9.
        n: canvases to make.
        canvas: side of the square canvas.
        digits: digits per canvas (2..10), of distinct classes.
        cue: side of the hollow square cue.
        gap: the least distance from any cue pixel to any digit box.
        margin: the least difference between the nearest and the second nearest digit's centre distance.
        seed: seed of every choice.

    Returns:
        ``(canvases, targets, layouts)``: uint8 (n, canvas, canvas), int64 (n,), and where each piece went.

    Raises:
        ValueError: settings no canvas can meet (too many or too large digits, too wide a gap).
    """
    side = images.shape[1]
    present = len(set(labels.tolist()))
    if not 2 <= digits <= present or cue < 3 or gap < 0 or margin < 0 or canvas < 2 * side + cue:
        raise ValueError(
            f"need 2 <= digits <= {present} classes, cue >= 3, gap, margin >= 0 and canvas >= 2 x {side} + cue"
        )
    params = dict(canvas=canvas, digits=digits, cue=cue, gap=gap, margin=margin)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    targets = np.zeros(n, dtype=np.int64)
    layouts: list[CuedLayout] = []
    for i in range(n):
        for _ in range(_TRIES):
            layout = _layout(rng, by_class, side, params)
            if layout is not None:
                break
        else:
            raise ValueError(f"no layout of {digits} {side}px digits and a cue {gap}px away fits a {canvas}px canvas")
        for (y, x), src in zip(layout.boxes, layout.sources, strict=True):
            out[i, y : y + side, x : x + side] = images[src]
        cy, cx = layout.cue
        out[i, cy : cy + cue, cx : cx + cue] = 255
        out[i, cy + 1 : cy + cue - 1, cx + 1 : cx + cue - 1] = 0  # hollow: unlike any stroke of a digit
        targets[i] = labels[layout.sources[layout.marked]]
        layouts.append(layout)
    return out, targets, layouts


def shrink(images: np.ndarray, side: int = DIGIT_SIDE) -> np.ndarray:
    """Digits ``(N, s, s)`` reduced to ``side`` px by averaging whole blocks when ``s`` is a multiple of ``side``
    (the 28 px MNIST digits to 14); any other size is returned as it is (the 8x8 fallback digits)."""
    s = images.shape[1]
    if s <= side or s % side:
        return images
    f = s // side
    return images.reshape(len(images), side, f, side, f).mean((2, 4)).round().astype(np.uint8)


def cued_digits(
    train_tf: Callable | None,
    val_tf: Callable | None,
    val_fraction: float = 0.1,
    seed: int = 0,
    *,
    train_size: int = TRAIN_SIZE,
    val_size: int = VAL_SIZE,
) -> tuple[digits.DigitsDataset, digits.DigitsDataset, list[str]]:
    """Train and val sets of cued digits: the plain digits' split first, then each split's canvases from its own
    digits alone (``val_size`` >= 2,000 keeps the binomial SD of a val top-1 near 1 point or less)."""
    train_canvas, train_y, val_canvas, val_y = _cued_arrays(val_fraction, seed, train_size, val_size)
    train = digits.DigitsDataset(train_canvas, train_y, train_tf)
    val = digits.DigitsDataset(val_canvas, val_y, val_tf)
    return train, val, train.classes


@functools.lru_cache(maxsize=8)
def _cued_arrays(val_fraction: float, seed: int, train_size: int, val_size: int) -> tuple[np.ndarray, ...]:
    """The canvases and labels of one seed's train and val sets, made once per process (a process that trains
    several runs of a study makes each seed's data once); read-only, as every run shares them."""
    tr, va = digits.digits_split(val_fraction, seed)
    images, labels = digits.load_digits_arrays()
    images = shrink(images)
    train_canvas, train_y, _ = cued(images[tr], labels[tr], train_size, seed=seed * 2)
    val_canvas, val_y, _ = cued(images[va], labels[va], val_size, seed=seed * 2 + 1)
    arrays = (train_canvas, np.asarray(train_y), val_canvas, np.asarray(val_y))
    for a in arrays:
        a.flags.writeable = False
    return arrays

"""Cluttered digits: the built-in digits on a larger canvas with clutter, where kernel size can matter.

On 28x28 digits every receptive field covers the whole digit, so a study of kernel sizes shows nothing.
After the translated and cluttered MNIST of the attention literature (Mnih et al. 2014, "Recurrent Models
of Visual Attention"; Jaderberg et al. 2015, "Spatial Transformer Networks"), each digit is placed at a
random position on a larger canvas (60x60 by default), and ``pieces`` square patches cut at random from
other digits of the same split are pasted at random positions (pixel-wise maximum, so strokes overlap
as ink does). The train/val split of the plain digits is drawn first; each split's clutter comes only from
its own images, so no val pixel ever appears in a train canvas. Everything is seeded: the same arguments
give the same canvases in every process.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixnet.data import digits

CLUTTERED = "cluttered-digits"
CANVAS, PIECES, PIECE_SIZE = 60, 4, 8


def clutter(
    images: np.ndarray, *, canvas: int = CANVAS, pieces: int = PIECES, piece_size: int = PIECE_SIZE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Places each image at a random position on a blank canvas and adds clutter cut from the same images.

    Args:
        images: uint8 (N, H, W), the digits of one split (also the only source of clutter).
        canvas: side of the square canvas (>= the digit side).
        pieces: clutter patches per canvas.
        piece_size: side of a clutter patch (<= the digit side).
        seed: seed of positions and patch choices.

    Returns:
        ``(canvases, positions)``: uint8 (N, canvas, canvas) and each digit's top-left corner (N, 2) as (y, x).

    Raises:
        ValueError: a canvas smaller than the digits, or a patch larger than them.
    """
    n, h, w = images.shape
    if canvas < max(h, w) or not 0 < piece_size <= min(h, w) or pieces < 0:
        raise ValueError(f"need canvas >= {max(h, w)}, 0 < piece_size <= {min(h, w)} and pieces >= 0")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    positions = np.stack([rng.integers(0, canvas - h + 1, n), rng.integers(0, canvas - w + 1, n)], axis=1)
    for i in range(n):
        for _ in range(pieces):
            src = images[rng.integers(n)]
            sy, sx = rng.integers(0, h - piece_size + 1), rng.integers(0, w - piece_size + 1)
            dy, dx = rng.integers(0, canvas - piece_size + 1, 2)
            region = out[i, dy : dy + piece_size, dx : dx + piece_size]
            np.maximum(region, src[sy : sy + piece_size, sx : sx + piece_size], out=region)
        y, x = positions[i]
        region = out[i, y : y + h, x : x + w]
        np.maximum(region, images[i], out=region)
    return out, positions


def cluttered_digits(
    train_tf: Callable | None, val_tf: Callable | None, val_fraction: float = 0.1, seed: int = 0
) -> tuple[digits.DigitsDataset, digits.DigitsDataset, list[str]]:
    """Train and val sets of cluttered digits: the plain digits' split first, then each split cluttered alone."""
    tr, va = digits.digits_split(val_fraction, seed)
    images, labels = digits.load_digits_arrays()
    train_canvas, _ = clutter(images[tr], seed=seed * 2)
    val_canvas, _ = clutter(images[va], seed=seed * 2 + 1)
    train = digits.DigitsDataset(train_canvas, labels[tr], train_tf)
    val = digits.DigitsDataset(val_canvas, labels[va], val_tf)
    return train, val, train.classes

"""Cued digits: the label is the digit nearest a cue, and no local window can read it."""

import numpy as np
import pytest
from scipy import ndimage

from mixnet.data import digits
from mixnet.data.cued import CANVAS, CUE, CUED, GAP, MARGIN, TRAIN_SIZE, VAL_SIZE, cued, cued_digits, shrink


def _digits():
    images, labels = digits.load_digits_arrays()
    return shrink(images), labels


@pytest.fixture(scope="module")
def val_set():
    tr, va = digits.digits_split(0.1, 0)
    images, labels = _digits()
    return images[va], labels[va], cued(images[va], labels[va], 2000, seed=5)


def test_every_window_that_shows_the_cue_shows_no_digit_ink(val_set):
    """Distances from scipy's exact Euclidean distance transform of the digits' ink, not from the layout's boxes."""
    images, _, (canvases, _, layouts) = val_set
    side = images.shape[1]
    for canvas, layout in zip(canvases, layouts, strict=True):
        ink = np.zeros(canvas.shape, dtype=bool)
        for (y, x), src in zip(layout.boxes, layout.sources, strict=True):
            ink[y : y + side, x : x + side] = images[src] > 0
        to_ink = ndimage.distance_transform_edt(~ink)
        cy, cx = layout.cue
        assert to_ink[cy : cy + CUE, cx : cx + CUE].min() >= GAP
        # Outside the digit boxes the canvas holds the cue alone: a hollow square of 4 (CUE - 1) pixels.
        boxes = np.zeros(canvas.shape, dtype=bool)
        for y, x in layout.boxes:
            boxes[y : y + side, x : x + side] = True
        assert np.count_nonzero(canvas[~boxes]) == 4 * (CUE - 1)


def test_the_label_is_the_nearest_digit_and_never_a_close_call(val_set):
    images, labels, (canvases, targets, layouts) = val_set
    side = images.shape[1]
    for canvas, target, layout in zip(canvases, targets, layouts, strict=True):
        cue = np.array(layout.cue) + (CUE - 1) / 2
        dist = sorted(
            (np.linalg.norm(np.array(b) + (side - 1) / 2 - cue), labels[s])
            for b, s in zip(layout.boxes, layout.sources, strict=True)
        )
        assert target == dist[0][1] and dist[1][0] - dist[0][0] >= MARGIN
        assert len({labels[s] for s in layout.sources}) == len(layout.sources)  # distinct classes
        for (y, x), src in zip(layout.boxes, layout.sources, strict=True):
            assert np.array_equal(canvas[y : y + side, x : x + side], images[src])


def test_the_digits_a_window_sees_do_not_say_which_is_marked(val_set):
    """Which of the present classes is marked (by class rank) is uniform: the bag of digits gives chance only."""
    _, labels, (_, targets, layouts) = val_set
    ranks = [sorted(labels[layout.sources].tolist()).index(t) for layout, t in zip(layouts, targets, strict=True)]
    share = np.bincount(ranks, minlength=3) / len(ranks)
    assert share == pytest.approx([1 / 3] * 3, abs=0.04)  # 4 binomial SDs at 2,000 canvases


def test_val_canvases_hold_only_held_out_digits():
    train, val, classes = cued_digits(None, None, train_size=20, val_size=30)
    assert classes == [str(i) for i in range(10)]
    tr, va = digits.digits_split(0.1, 0)
    images, _ = _digits()
    owner = {images[i].tobytes(): "train" for i in tr} | {images[i].tobytes(): "val" for i in va}
    side = images.shape[1]
    for ds, split in ((train, "train"), (val, "val")):
        for canvas in ds.images:
            windows = np.lib.stride_tricks.sliding_window_view(canvas, (side, side)).reshape(-1, side, side)
            found = [owner.get(w.tobytes()) for w in windows if w.any()]
            found = [f for f in found if f is not None]
            assert found == [split] * 3  # the canvas's three digits, all from its own split


def test_defaults_and_bad_settings():
    assert VAL_SIZE >= 2000  # binomial SD of a val top-1 about 1 point or less
    images, labels = digits.load_digits_arrays()
    with pytest.raises(ValueError, match="canvas >= 2 x 28"):
        cued(images, labels, 1, canvas=50)
    with pytest.raises(ValueError, match="no layout"):
        cued(images, labels, 1, canvas=64, gap=40)


def test_shrink_averages_whole_blocks_and_leaves_other_sizes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    small = shrink(images)
    assert small.shape == (3, 14, 14)
    assert small[1, 2, 3] == round(images[1, 4:6, 6:8].astype(float).mean())
    eights = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    assert shrink(eights) is eights


def test_the_built_in_set_is_48_px_canvases_of_half_size_digits():
    from mixnet.data.datasets import build_datasets, is_builtin
    from mixnet.train.config import data_defaults

    assert is_builtin(CUED) and not is_builtin(f"./{CUED}")
    train, val, classes = build_datasets(CUED, train_tf=None, val_tf=None)
    assert (len(train), len(val), classes) == (TRAIN_SIZE, VAL_SIZE, [str(i) for i in range(10)])
    assert train.images.shape[1:] == val.images.shape[1:] == (CANVAS, CANVAS) == (48, 48)
    assert data_defaults(CUED) == {"img_size": 48, "hflip": 0.0, "crop_scale": (1.0, 1.0), "crop_pct": 1.0}
    # The marked digit is far from the cue: no val canvas can be answered from the cue's neighbourhood.
    _, _, layouts = cued(*_digits(), 200, seed=3)
    dist = [np.hypot(*(lay.boxes[lay.marked] + 6.5 - np.array(lay.cue) - (CUE - 1) / 2)) for lay in layouts]
    assert min(dist) >= GAP + 7

"""The cluttered digits: seeded, the digit intact on its canvas, and each split cluttered from itself only."""

import numpy as np
import pytest

from mixnet.data import build_datasets, build_eval_dataset, clutter, digits, is_builtin


def test_clutter_is_seeded_and_keeps_each_digit_whole():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    a, pos = clutter(images, canvas=60, pieces=4, seed=3)
    b, pos_b = clutter(images, canvas=60, pieces=4, seed=3)
    c, _ = clutter(images, canvas=60, pieces=4, seed=4)
    assert a.shape == (20, 60, 60) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(pos, pos_b) and not np.array_equal(a, c)
    for canvas, (y, x), digit in zip(a, pos, images, strict=True):
        assert (canvas[y : y + 28, x : x + 28] >= digit).all()  # clutter only adds ink on top of the digit
    assert len({tuple(p) for p in pos}) > 10  # positions vary
    blank, _ = clutter(np.zeros((3, 28, 28), np.uint8) + 7, pieces=0)
    assert sorted(np.unique(blank)) == [0, 7] and (blank == 7).sum() == 3 * 28 * 28
    with pytest.raises(ValueError, match="canvas"):
        clutter(images, canvas=20)


def test_each_split_is_cluttered_only_from_its_own_images(monkeypatch):
    # Every image gets one grey level of its own: a canvas's grey levels tell which images it came from.
    n = 200
    labels = np.arange(n) % 10
    images = np.repeat((1 + np.arange(n, dtype=np.uint8))[:, None, None], 28 * 28, axis=1).reshape(n, 28, 28)
    monkeypatch.setattr(digits, "load_digits_arrays", lambda: (images, labels))
    train, val, classes = build_datasets("cluttered-digits", train_tf=None, val_tf=None, val_fraction=0.2)
    tr, va = digits.digits_split(0.2, 0)  # the plain digits' split, drawn before any clutter
    assert classes == [str(i) for i in range(10)] and len(train) == len(tr) and len(val) == len(va)
    assert train.targets == labels[tr].tolist() and val.targets == labels[va].tolist()
    val_levels, train_levels = set((1 + va).tolist()), set((1 + tr).tolist())
    assert set(np.unique(val.images).tolist()) - {0} <= val_levels
    assert set(np.unique(train.images).tolist()) - {0} <= train_levels
    # The eval set is the same val split.
    ds, _ = build_eval_dataset("cluttered-digits", val_tf=None, val_fraction=0.2)
    assert np.array_equal(ds.images, val.images)


def test_builtin_names():
    assert is_builtin("cluttered-digits") and is_builtin("digits") and is_builtin(None)
    assert not is_builtin("./cluttered-digits")

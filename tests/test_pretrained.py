"""Loading local checkpoints (timm and mixnet format) and the offline path for hub weights."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import mixnet
from mixnet.io.files import CheckpointError


def _timm_weights(name="mixnet_s"):
    ref = timm.create_model(name).eval()
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    return ref


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_timm_checkpoint_gives_timm_logits(tmp_path, suffix):
    ref = _timm_weights()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": ref.state_dict()}, path)
    else:
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    ours = mixnet.create_model("mixnet_s", pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert (ours(x) - ref(x)).abs().max() <= 1e-4


def test_local_mixnet_checkpoint_round_trips(tmp_path):
    a = mixnet.create_model("tf_mixnet_s", num_classes=7)
    path = tmp_path / "ours.safetensors"
    save_file(a.state_dict(), str(path))
    b = mixnet.create_model("tf_mixnet_s", num_classes=7, pretrained=str(path))
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_wrong_architecture_names_keys_and_shapes(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(mixnet.create_model("mixnet_m").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"shape mismatch: stem\.conv\.weight: checkpoint \(24, 3, 3, 3\)"):
        mixnet.create_model("mixnet_s", pretrained=path)


def test_local_file_with_another_class_count_starts_a_fresh_classifier(tmp_path):
    """Fine-tuning from a local ImageNet file: as with hub weights, the classifier is re-initialised, loudly."""
    source = mixnet.create_model("mixnet_s", num_classes=10)
    path = tmp_path / "c.pth"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match="10-class classifier; this model's 4-class classifier is freshly init"):
        model = mixnet.create_model("mixnet_s", num_classes=4, pretrained=path)
    assert torch.equal(model.head.conv.weight, source.head.conv.weight)
    assert model.classifier.weight.shape == (4, 1536)
    # Reading the file as a model (load_model) keeps its own head: 10 classes.
    assert mixnet.load_model(path, architecture="mixnet_s")[1].num_classes == 10


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"w": torch.ones(1000)}, bad)
    bad.write_bytes(bad.read_bytes()[:300])  # a torch.save file cut short, as by a full disk
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        mixnet.create_model("mixnet_s", pretrained=bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        mixnet.create_model("mixnet_s", pretrained=tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    ("name", "text"), [("notes.txt", "some notes\n"), ("config.json", '{"epochs": 3}\n'), ("m.safetensors", "{}")]
)
def test_a_file_that_is_not_a_model_file_is_one_line(tmp_path, capsys, name, text):
    from mixnet.cli import main

    path = tmp_path / name
    path.write_text(text)
    assert main(["eval", "--weights", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"mixnet eval: error: {str(path)!r} is not a model file: a model file is a .safetensors file or a "
        "torch.save file (.pth, .pt)\n"
    )


def test_a_model_file_is_read_by_its_content_not_its_name(tmp_path):
    from mixnet.io.files import file_format, read_checkpoint

    model = mixnet.create_model("mixnet_s", num_classes=3)
    save_file(model.state_dict(), tmp_path / "weights.bin")
    torch.save({"w": torch.ones(2)}, tmp_path / "ckpt.pt")
    assert file_format(tmp_path / "weights.bin") == "safetensors"
    assert file_format(tmp_path / "ckpt.pt") == "torch"
    assert read_checkpoint(tmp_path / "weights.bin").keys() == model.state_dict().keys()
    assert mixnet.load_model(tmp_path / "weights.bin", architecture="mixnet_s")[1].num_classes == 3


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("import sys; sys.exit(99)",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*pickled Python objects \(exec\).*execute code"):
        mixnet.create_model("mixnet_s", pretrained=path)


def test_hub_weights_offline_says_what_to_do(monkeypatch):
    pytest.importorskip("huggingface_hub")
    import huggingface_hub

    def fail(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(RuntimeError, match=r"timm/mixnet_s\.ft_in1k.*pretrained='path/to/model\.safetensors'"):
        mixnet.create_model("mixnet_s", pretrained=True)


def test_hub_weights_adapt_to_new_head(monkeypatch, tmp_path):
    """pretrained=True with another class count / channel count keeps the backbone weights."""
    pytest.importorskip("huggingface_hub")
    import huggingface_hub

    ref = _timm_weights()
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: str(path))
    model = mixnet.create_model("mixnet_s", pretrained=True, num_classes=5, in_chans=1)
    assert torch.equal(model.stages[2][0].dw_conv.convs[1].weight, ref.blocks[2][0].conv_dw["1"].weight)
    assert torch.allclose(model.stem.conv.weight, ref.conv_stem.weight.sum(1, keepdim=True))
    assert model.classifier.out_features == 5
    feats = mixnet.create_model("mixnet_s", pretrained=True, features_only=True)
    assert torch.equal(feats.stem.conv.weight, ref.conv_stem.weight)


def test_local_file_into_backbone_drops_only_the_head(tmp_path):
    ref = _timm_weights()
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    feats = mixnet.create_model("mixnet_s", pretrained=path, features_only=True)
    assert torch.equal(feats.stages[5][2].project_bn.running_var, ref.blocks[5][2].bn3.running_var)


def test_read_checkpoint_is_the_one_safe_reader(tmp_path):
    from mixnet.io.files import read_checkpoint
    from mixnet.train.checkpoint import load_checkpoint

    legacy = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.ones(2)}}, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(legacy, mmap=True)["model"]["w"], torch.ones(2))  # not mappable: read whole
    listed = tmp_path / "list.pth"
    torch.save([torch.ones(1)], listed)
    with pytest.raises(CheckpointError, match="list.pth' holds a list, not a mapping"):
        read_checkpoint(listed)
    # The training checkpoint loader reports through the same reader and error type.
    bad = tmp_path / "bad.pth"
    bad.write_bytes(legacy.read_bytes()[:100])  # cut short
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint '.*bad.pth': "):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="not a mixnet training checkpoint .missing optimizer, epoch"):
        load_checkpoint(legacy)


def test_model_file_of_another_config_warns_when_loaded_into_a_registered_model(tmp_path):
    saved = mixnet.create_model("mixnet_s", bn_eps=1e-3)
    path = mixnet.save_model(tmp_path / "m.safetensors", saved)
    with pytest.warns(UserWarning, match=r"saved from mixnet_s with \{'bn_eps': 0.001\}.*differs in \['bn_eps'\]"):
        mixnet.create_model("mixnet_s", pretrained=path)
    assert mixnet.load_model(path)[0].stem.bn.eps == 1e-3  # the file's own model, rebuilt


def test_backbone_weights_into_a_classifier_start_a_fresh_head(tmp_path):
    backbone = mixnet.create_model("mixnet_s", num_classes=0)
    path = tmp_path / "b.pth"
    torch.save(backbone.state_dict(), path)
    with pytest.warns(UserWarning, match="has no classifier; this model's classifier is freshly init"):
        model = mixnet.create_model("mixnet_s", num_classes=3, pretrained=path)
    assert torch.equal(model.head.conv.weight, backbone.head.conv.weight)


def test_specs_that_cannot_build_are_named_errors(tmp_path):
    import json

    from safetensors.torch import save_file

    model = mixnet.create_model("mixnet_s", num_classes=3)
    spec = mixnet.ModelSpec.from_model(model).to_dict()
    path = tmp_path / "s.safetensors"
    for change, message in (
        ({"num_classes": "3"}, "num_classes must be an integer"),
        ({"config": {"head_channels": "wide"}}, "does not build a model"),
    ):
        save_file(model.state_dict(), str(path), metadata={"mixnet.spec": json.dumps(spec | change)})
        with pytest.raises(CheckpointError, match=message):
            mixnet.load_model(path)
    own = mixnet.save_model(tmp_path / "own.safetensors", mixnet.MixNet(mixnet.create_model("mixnet_s").config))
    with pytest.raises(CheckpointError, match="architecture of its own"):
        mixnet.load_model(own, architecture="mixnet_m")
    with pytest.raises(ValueError, match="features_only backbone has no model-file spec"):
        mixnet.ModelSpec.from_model(mixnet.create_model("mixnet_s", features_only=True))

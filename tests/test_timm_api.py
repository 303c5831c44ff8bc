"""timm's model API on every registered model, checked against timm's own models with converted weights.

Covers what timm's tests ask of a model (``pretrained_cfg``, classifier reset, ``forward_features`` /
``forward_head``, ``forward_intermediates`` / ``prune_intermediate_layers``, gradient checkpointing,
``features_only`` backbones, TorchScript, ``torch.fx`` and torchvision's feature extraction), with our
answers compared to timm's where timm has one. Inputs are small, and odd-sized where TF "SAME" padding
matters. Scripting the larger models is marked ``slow``.
"""

import ast
import copy
import functools
import warnings
from pathlib import Path

import pytest
import timm
import torch
from conftest import randomize_bn
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import mixnet
from mixnet.factory import FEATURE_CLASSES
from mixnet.io.convert import from_timm
from mixnet.layers import MixConv2d
from mixnet.models.registry import get_entry

MODELS = mixnet.list_models()
FAST = ("mixnet_s", "tf_mixnet_s")
TOL = 1e-4
ODD = (35, 41)  # odd, non-square: TF "SAME" padding differs between the axes (35 -> 18 -> 9 -> 5 -> 3 -> 2)


def _slow_unless_fast(names: list[str]) -> list:
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these inputs are tiny, and on a busy 2-core machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _pair(name: str) -> tuple[nn.Module, nn.Module]:
    """(ours, timm's) in eval mode with the same weights: timm's random init, randomised BN, converted."""
    torch.manual_seed(0)
    ref = timm.create_model(get_entry(name).timm_model, pretrained=False).eval()
    with torch.no_grad():
        randomize_bn(ref)
    ours = mixnet.create_model(name).eval()
    ours.load_state_dict(from_timm(ref.state_dict()))
    return ours, ref


def _pair_copy(name: str) -> tuple[nn.Module, nn.Module]:
    ours, ref = _pair(name)
    return copy.deepcopy(ours), copy.deepcopy(ref)


def _x(batch: int = 2, size: tuple[int, int] = ODD, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    return a.shape == b.shape and (a - b).abs().max().item() <= tol


def _all_close(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = TOL) -> bool:
    return len(a) == len(b) and all(_close(u, v, tol) for u, v in zip(a, b, strict=True))


# --- pretrained_cfg, classifier, forward_features / forward_head -------------------------------------------


CFG_KEYS = ("input_size", "pool_size", "crop_pct", "crop_mode", "interpolation", "mean", "std", "num_classes")


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_cfg_matches_timm_and_names_real_modules(name):
    ours, ref = _pair(name)
    cfg = ours.pretrained_cfg
    assert ours.default_cfg is cfg
    assert cfg["architecture"] == name
    assert {k: cfg[k] for k in CFG_KEYS} == {k: ref.pretrained_cfg[k] for k in CFG_KEYS}
    first = ours.get_submodule(cfg["first_conv"])
    assert isinstance(first, nn.Conv2d) and first.in_channels == 3
    classifier = ours.get_submodule(cfg["classifier"])
    assert classifier is ours.get_classifier()
    assert isinstance(classifier, nn.Linear) and classifier.out_features == cfg["num_classes"] == ours.num_classes
    assert ours.num_features == ours.head_hidden_size == ref.num_features == ref.head_hidden_size
    assert ours.num_features == {"mobilenet_v1": 1024, "mobilenet_v2": 1280}.get(name, 1536)


@pytest.mark.parametrize("name", MODELS)
def test_features_only_pretrained_cfg_has_no_classifier(name):
    backbone = mixnet.create_model(name, features_only=True)
    ref = timm.create_model(get_entry(name).timm_model, features_only=True)
    cfg = backbone.pretrained_cfg
    assert backbone.default_cfg is cfg
    assert not {"classifier", "num_classes", "global_pool"} & (set(cfg) | set(ref.pretrained_cfg))
    assert {k: cfg[k] for k in CFG_KEYS if k != "num_classes"} == {
        k: ref.pretrained_cfg[k] for k in CFG_KEYS if k != "num_classes"
    }
    assert isinstance(backbone.get_submodule(cfg["first_conv"]), nn.Conv2d)


@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier_and_unpooled_output(name):
    model, _ = _pair_copy(name)
    x = _x(size=(64, 64))
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, model.num_features, 2, 2)

        model.reset_classifier(10)
        assert isinstance(model.get_classifier(), nn.Linear) and model.get_classifier().out_features == 10
        assert model.num_classes == model.pretrained_cfg["num_classes"] == 10
        assert model(x).shape == (2, 10)

        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity) and model.num_classes == 0
        assert _close(model(x), feats.mean((2, 3)), 1e-5)  # pooled features (N, 1536)

        model.reset_classifier(0, global_pool="")
        assert torch.equal(model(x), feats)  # the unpooled map

        with pytest.raises(ValueError, match="global_pool"):
            model.reset_classifier(5, global_pool="")
        model.reset_classifier(7, global_pool="avg")
        assert model(x).shape == (2, 7)

    # A new classifier follows the model's dtype (and device).
    model.double().reset_classifier(3)
    assert model.get_classifier().weight.dtype == torch.float64

    unpooled = mixnet.create_model(name, num_classes=0, global_pool="").eval()
    with torch.no_grad():
        out = unpooled(x)
        assert out.shape == (2, unpooled.num_features, 2, 2) and torch.equal(out, unpooled.forward_features(x))
    assert unpooled.num_classes == unpooled.pretrained_cfg["num_classes"] == 0


@pytest.mark.parametrize("name", MODELS)
def test_forward_features_and_head_equal_timm(name):
    ours, ref = _pair(name)
    x = _x()
    with torch.no_grad():
        a, b = ours.forward_features(x), ref.forward_features(x)
        assert _close(a, b)
        assert _close(ours.forward_head(a, pre_logits=True), ref.forward_head(b, pre_logits=True))
        assert _close(ours.forward_head(a), ref.forward_head(b))
        assert _close(ours(x), ref(x))


# --- forward_intermediates / prune_intermediate_layers ---------------------------------------------------

INTERMEDIATE_CASES = [
    {},
    {"indices": 2},
    {"indices": [0, -1]},
    {"indices": [-2, 1], "intermediates_only": True},
    {"indices": [2], "stop_early": True},
    {"indices": [-1], "stop_early": True, "norm": True},
    {"indices": 3, "intermediates_only": True, "stop_early": True},
    {"extra_blocks": True},
    {"indices": [0, 3], "extra_blocks": True, "stop_early": True},
    {"indices": [0], "extra_blocks": True, "stop_early": True},
    {"indices": 2, "extra_blocks": True, "intermediates_only": True},
]


def _intermediates_equal(a, b, case: dict) -> None:
    if case.get("intermediates_only"):
        assert isinstance(a, list) and _all_close(a, b), case
    else:
        assert isinstance(a, tuple) and _close(a[0], b[0]) and _all_close(a[1], b[1]), case


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates_equal_timm(name):
    ours, ref = _pair(name)
    x = _x(batch=1)
    with torch.no_grad():
        for case in INTERMEDIATE_CASES:
            _intermediates_equal(ours.forward_intermediates(x, **case), ref.forward_intermediates(x, **case), case)
        # All maps, with the final features: those of forward_features; the maps follow feature_info.
        final, maps = ours.forward_intermediates(x)
        assert torch.equal(final, ours.forward_features(x))
        assert [m.shape[1] for m in maps] == ours.feature_info.channels() == [f["num_chs"] for f in ref.feature_info]
        assert [m.shape[-1] for m in maps] == [-(-ODD[1] // r) for r in (2, 4, 8, 16, 32)]
        assert ours.stage_ends == ref.stage_ends
    with pytest.raises(ValueError):
        ours.forward_intermediates(x, indices=[5])
    with pytest.raises(ValueError):
        ours.forward_intermediates(x, indices=6)
    with pytest.raises(ValueError, match="output_fmt"):
        ours.forward_intermediates(x, output_fmt="NHWC")


PRUNE_CASES = [
    {"indices": [1, 2]},
    {"indices": 2, "prune_head": False},
    {"indices": [1, 3], "extra_blocks": True},
]
PRUNE_EDGE_CASES = [  # the stem alone is kept (only on the fast models)
    {"indices": [0], "prune_head": False},
    {"indices": [0], "extra_blocks": True},
]


@pytest.mark.parametrize("name", MODELS)
def test_prune_intermediate_layers_equal_timm(name):
    x = _x(batch=1)
    for case in PRUNE_CASES + (PRUNE_EDGE_CASES if name in FAST else []):
        ours, ref = _pair_copy(name)
        kw = {"indices": case["indices"], "extra_blocks": case.get("extra_blocks", False)}
        with torch.no_grad():
            before = ours.forward_intermediates(x, **kw, intermediates_only=True)
            kept = ours.prune_intermediate_layers(**case)
            assert kept == ref.prune_intermediate_layers(**case), case
            after = ours.forward_intermediates(x, **kw)
            assert _all_close(after[1], before, 0.0), case
            _intermediates_equal(after, ref.forward_intermediates(x, **kw), case)
            assert _close(ours.forward_features(x), ref.forward_features(x)), case
            assert _close(ours(x), ref(x)), case
        # The same layers are gone: equal parameter counts, blocks, head and classifier.
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()), case
        assert [len(s) for s in ours.stages] == [len(s) for s in ref.blocks if len(s)], case
        assert isinstance(ours.head, nn.Identity) == isinstance(ref.conv_head, nn.Identity), case
        assert type(ours.get_classifier()) is type(ref.get_classifier()), case
        assert (ours.num_features, ours.head_hidden_size, ours.num_classes) == (
            ref.num_features,
            ref.head_hidden_size,
            ref.num_classes,
        ), case


# --- gradient checkpointing ---------------------------------------------------------------------------------


def _train_step(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], dict, dict]:
    """Outputs, parameter gradients and BN buffers after one forward/backward in train mode."""
    model.zero_grad(set_to_none=True)
    out = model(x)
    outs = out if isinstance(out, list) else [out]
    sum(o.square().mean() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return [o.detach() for o in outs], grads, buffers


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
@pytest.mark.parametrize("name", _slow_unless_fast(MODELS))
def test_grad_checkpointing_same_outputs_gradients_and_bn_stats(name, features_only):
    torch.manual_seed(0)
    plain = mixnet.create_model(name, features_only=features_only, drop_rate=None if features_only else 0.0)
    plain = plain.double().train()
    ckpt = copy.deepcopy(plain)
    ckpt.set_grad_checkpointing()
    assert ckpt.grad_checkpointing and not plain.grad_checkpointing
    x = _x(size=(33, 31), dtype=torch.float64)
    out_a, grads_a, bufs_a = _train_step(plain, x)
    out_b, grads_b, bufs_b = _train_step(ckpt, x)
    assert _all_close(out_a, out_b, 1e-12)
    assert grads_a.keys() == grads_b.keys()
    assert all(_close(grads_a[n], grads_b[n], 1e-10) for n in grads_a)
    # The recomputation in backward does not update the BN running statistics a second time.
    assert all(torch.equal(bufs_a[n], bufs_b[n]) for n in bufs_a)


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).square().mean()
    loss.backward()
    return total


def test_grad_checkpointing_saves_memory_and_drop_path_recomputes_the_same():
    model = mixnet.create_model("mixnet_s", drop_path_rate=0.2).train()
    x = _x(size=(96, 96))
    plain = _saved_bytes(model, x)
    model.set_grad_checkpointing(True)
    checkpointed = _saved_bytes(model, x)
    assert checkpointed < plain / 4, (plain, checkpointed)
    # Stochastic depth draws the same masks in the recomputation: gradients equal an uncheckpointed run.
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert _all_close(grads[0], grads[1], 1e-5)
    # After turning it off, or in eval, nothing is checkpointed.
    model.set_grad_checkpointing(False)
    assert _saved_bytes(model, x) == plain
    model.eval()
    in_eval = _saved_bytes(model, x)
    model.set_grad_checkpointing(True)
    assert _saved_bytes(model, x) == in_eval


def test_forward_intermediates_with_grad_checkpointing():
    ours, _ = _pair_copy("tf_mixnet_s")
    ours.double().train()
    x = _x(size=(33, 31), dtype=torch.float64)
    a = ours.forward_intermediates(x, indices=[1, 3])
    ours.set_grad_checkpointing()
    b = ours.forward_intermediates(x, indices=[1, 3])
    assert _close(a[0], b[0], 1e-12) and _all_close(a[1], b[1], 1e-12)


# --- features_only ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_features_only_feature_info_equals_timm_and_names_the_modules(name):
    timm_name = get_entry(name).timm_model
    refs = {
        oi: timm.create_model(timm_name, features_only=True, out_indices=oi).feature_info
        for oi in [(0, 1, 2, 3, 4), (1, 3)]
    }
    channels, reductions = refs[(0, 1, 2, 3, 4)].channels(), refs[(0, 1, 2, 3, 4)].reduction()
    for out_indices in [(0, 1, 2, 3, 4), (1, 3), (4,), (0, 2)]:
        ours = mixnet.create_model(name, features_only=True, out_indices=out_indices).eval()
        info = ours.feature_info
        assert info.channels() == [channels[i] for i in out_indices], out_indices
        assert info.reduction() == [reductions[i] for i in out_indices], out_indices
        assert len(info.module_name()) == len(out_indices)
        if out_indices in refs:
            assert (info.channels(), info.reduction()) == (refs[out_indices].channels(), refs[out_indices].reduction())
        # Our modules are stages.N where timm's are blocks.N: each resolves, and its output is the map.
        seen: dict[str, torch.Tensor] = {}
        hooks = [
            ours.get_submodule(n).register_forward_hook(lambda m, i, o, n=n, seen=seen: seen.__setitem__(n, o))
            for n in info.module_name()
        ]
        x = _x(batch=1)
        with torch.no_grad():
            maps = ours(x)
        for h in hooks:
            h.remove()
        assert len(maps) == len(out_indices)
        assert all(seen[n] is m for n, m in zip(info.module_name(), maps, strict=True))
        assert [m.shape[1] for m in maps] == info.channels()
        assert [m.shape[-2:] for m in maps] == [(-(-ODD[0] // r), -(-ODD[1] // r)) for r in info.reduction()]


@pytest.mark.parametrize("name", MODELS)
def test_features_only_maps_equal_timm(name):
    ours_cls, ref_cls = _pair(name)
    ref = timm.create_model(get_entry(name).timm_model, features_only=True).eval()
    assert not ref.load_state_dict(ref_cls.state_dict(), strict=False).missing_keys
    ours = mixnet.create_model(name, features_only=True, out_indices=(1, 2, 4)).eval()
    assert not ours.load_state_dict(ours_cls.state_dict(), strict=False).missing_keys
    x = _x(batch=1)
    with torch.no_grad():
        expected = ref(x)
        assert _all_close(ours(x), [expected[i] for i in (1, 2, 4)])


def _timm_features(name: str, ref_cls: nn.Module, cfg: dict) -> nn.Module:
    """timm's features model for ``cfg`` with ``ref_cls``'s weights, mapped key by key.

    timm's wrappers hold the classifier's backbone modules in the same order under other prefixes
    (``graph_module.``, ``model.``) or flattened names (``blocks_0``); the map is checked name by name.
    """
    ref = timm.create_model(get_entry(name).timm_model, features_only=True, feature_cfg=dict(cfg)).eval()
    keys, source = list(ref.state_dict()), ref_cls.state_dict()
    mapped = {}
    for key, src in zip(keys, list(source)[: len(keys)], strict=True):
        plain = key.removeprefix("graph_module.").removeprefix("model.")
        plain = ".".join(p.replace("blocks_", "blocks.") for p in plain.split("."))
        assert plain == src and ref.state_dict()[key].shape == source[src].shape, (key, src)
        mapped[key] = source[src]
    ref.load_state_dict(mapped)
    return ref


@pytest.mark.parametrize("feature_cls", FEATURE_CLASSES)
@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("via", ["kwarg", "feature_cfg"])
def test_feature_cls_maps_equal_timm(name, feature_cls, via):
    ours_cls, ref_cls = _pair(name)
    out_indices = (1, 2, 4)
    # timm's list and dict classes reach mixnet's maps only with flatten_sequential; ours ignore it.
    cfg = {"feature_cls": feature_cls, "out_indices": out_indices, "flatten_sequential": True}
    ref = _timm_features(name, ref_cls, cfg)
    if via == "kwarg":
        ours = mixnet.create_model(name, features_only=True, feature_cls=feature_cls, out_indices=out_indices)
    else:
        ours = mixnet.create_model(name, features_only=True, feature_cfg=cfg)
    assert not ours.load_state_dict(ours_cls.state_dict(), strict=False).missing_keys
    ours.eval()
    assert ours.feature_info.channels() == ref.feature_info.channels()
    assert ours.feature_info.reduction() == ref.feature_info.reduction()
    x = _x(batch=1)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict))
    if isinstance(b, dict):
        assert list(a) == list(b) == ["1", "2", "4"]
        a, b = list(a.values()), list(b.values())
    assert _all_close(a, b)
    if feature_cls == "fx":
        assert isinstance(ours, torch.fx.GraphModule)
        assert ours.pretrained_cfg.get("num_classes") is None and ours.out_indices == out_indices


def test_feature_cls_refuses_unknown_and_unsupported_options():
    with pytest.raises(TypeError, match="features_only"):
        mixnet.create_model("mixnet_s", feature_cls="getter")
    with pytest.raises(ValueError, match="unknown feature_cls 'tree'"):
        mixnet.create_model("mixnet_s", features_only=True, feature_cls="tree")
    with pytest.raises(TypeError, match=r"\['out_map'\] are not supported"):
        mixnet.create_model("mixnet_s", features_only=True, feature_cfg={"feature_cls": "list", "out_map": (0,)})
    # timm: any name containing "hook" is the hook class, and the out_indices keyword beats feature_cfg's.
    model = mixnet.create_model(
        "mixnet_s", features_only=True, feature_cls="HookNet", out_indices=(2,), feature_cfg={"out_indices": (0, 1)}
    )
    assert model.feature_info.channels() == [40]


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
@pytest.mark.parametrize("name", FAST)
def test_fx_traced_models_script(name, features_only):
    """A torch.fx-traced model (features via feature_cls="fx", or a traced classifier) compiles with TorchScript."""
    if features_only:
        model = mixnet.create_model(name, features_only=True, feature_cls="fx").eval()
        eager = mixnet.create_model(name, features_only=True).eval()
        eager.load_state_dict(model.state_dict())
    else:
        eager = mixnet.create_model(name).eval()
        model = torch.fx.symbolic_trace(eager)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(model)
    with torch.no_grad(), torch.jit.optimized_execution(False):
        for size in (ODD, (32, 30)):
            x = _x(size=size)
            out, ref = scripted(x), eager(x)
            assert _all_close(out, ref, 1e-5) if features_only else _close(out, ref, 1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_partial_backbone_holds_no_later_stages(name):
    full = mixnet.create_model(name, features_only=True)
    part = mixnet.create_model(name, features_only=True, out_indices=(0, 1, 2))
    assert sum(p.numel() for p in part.parameters()) < sum(p.numel() for p in full.parameters())
    assert not any(k.startswith(("stages.3.", "stages.4.", "stages.5.")) for k in part.state_dict())
    with pytest.raises(AttributeError):
        part.get_submodule("stages.3")
    assert len(part.stages) == 3
    assert part.feature_info.channels() == full.feature_info.channels()[:3]
    # Negative indices count from the end, as in timm.
    last = mixnet.create_model(name, features_only=True, out_indices=(-1,))
    assert last.feature_info.channels() == full.feature_info.channels()[-1:]


# --- TorchScript, torch.fx, torchvision feature extraction -------------------------------------------------


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
@pytest.mark.parametrize("name", _slow_unless_fast(MODELS))
def test_torchscript(name, features_only):
    model = mixnet.create_model(name, features_only=features_only).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(model)
    with torch.no_grad():
        # Two calls at one size: the profiling run, then the optimised graph; then another size, since
        # TF "SAME" padding is computed at run time in the scripted model too.
        for size in (ODD, ODD, (32, 30)):
            x = _x(size=size)
            eager = model(x)
            # The backbones' graphs run in the plain interpreter: the optimising executor's first runs
            # cost seconds and are already exercised by the classifiers (same layers).
            with torch.jit.optimized_execution(not features_only):
                out = scripted(x)
            assert _all_close(out, eager, 1e-5) if features_only else _close(out, eager, 1e-5)


@pytest.mark.parametrize("features_only", [False, True], ids=["classifier", "features"])
@pytest.mark.parametrize("name", MODELS)
def test_fx_symbolic_trace(name, features_only):
    model = mixnet.create_model(name, features_only=features_only).eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        for size in (ODD, (32, 30)):  # one trace serves every input size (TF "SAME" padding included)
            x = _x(size=size)
            eager = model(x)
            out = traced(x)
            assert _all_close(out, eager, 0.0) if features_only else _close(out, eager, 0.0)
    if name.startswith("tf_"):
        assert any(n.op == "call_function" and n.target.__name__ == "pad_same" for n in traced.graph.nodes)


def test_fx_trace_in_training_mode_with_drop_path_and_fused_mixconv():
    model = mixnet.create_model("tf_mixnet_s", drop_path_rate=0.2, fuse_mixconv=True, num_classes=10).train()
    traced = torch.fx.symbolic_trace(model)
    x = _x(size=(48, 40))
    torch.manual_seed(3)
    eager = model(x)
    torch.manual_seed(3)
    assert _close(traced(x), eager, 0.0)  # the same drop-path draws, in the same order
    model.eval()
    with torch.no_grad():
        assert _close(torch.fx.symbolic_trace(model)(x), model(x), 0.0)


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_create_feature_extractor(name):
    model = _pair_copy(name)[0]
    nodes = model.feature_info.module_name()
    extractor = create_feature_extractor(model, return_nodes={n: str(i) for i, n in enumerate(nodes)} | {"head": "h"})
    x = _x(batch=1)
    with torch.no_grad():
        out = extractor(x)
        maps = model.forward_intermediates(x, intermediates_only=True)
        assert _all_close([out[str(i)] for i in range(len(nodes))], maps, 0.0)
        assert _close(out["h"], model.forward_features(x), 0.0)
    assert "stages.2" in nodes


def test_fused_mixconv_scripts_and_traces_with_dynamic_same_padding():
    conv = MixConv2d(12, 12, [3, 5, 7], stride=2, padding="same", fused=True).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(conv)
    traced = torch.fx.symbolic_trace(conv)
    for size in ((15, 16), (16, 17)):
        x = torch.randn(1, 12, *size)
        assert _close(scripted(x), conv(x), 1e-6) and _close(traced(x), conv(x), 0.0)


# --- the core stays free of timm and torchvision --------------------------------------------------------------


def test_layers_and_models_import_neither_timm_nor_torchvision():
    root = Path(mixnet.__file__).parent
    for path in sorted((root / "layers").glob("*.py")) + sorted((root / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in ("timm", "torchvision") for n in names), (path.name, names)

"""``create_model``: a registered MixNet by name, with timm's arguments and optional weights.

The model classes know nothing of files; weights come through :mod:`mixnet.io`, which is why the
factory sits above both (``layers -> models -> io -> factory``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from torch import nn

from mixnet.models.archfile import is_arch_file, load_arch
from mixnet.models.configs import KernelSpec, MixNetConfig
from mixnet.models.mixnet import MixNet, MixNetFeatureDict, MixNetFeatures, default_pretrained_cfg, fx_features
from mixnet.models.registry import ModelEntry, get_entry

# create_model keywords that change the architecture: every MixNetConfig field except the block table.
CONFIG_KWARGS = frozenset(f.name for f in dataclasses.fields(MixNetConfig)) - {"stages", "stem_channels"}
_CLASSIFIER_KWARGS = {"global_pool", "bn_momentum", "fuse_mixconv"}
_FEATURES_KWARGS = {"out_indices", "bn_momentum", "fuse_mixconv"}
# timm's feature classes by the names its create_model takes. Our backbone returns the maps from its own
# forward, so "list", "hook" and "getter" give the same module (timm's three differ in how they find the
# maps, not in the maps); "dict" keys them by out index, "fx" is the backbone traced by torch.fx.
FEATURE_CLASSES = ("list", "hook", "getter", "dict", "fx")
# The feature_cfg keys supported here. timm passes every other key to its feature class (out_map,
# output_fmt, feature_concat, ...); those change the form of the outputs and are refused by name rather than
# ignored. flatten_sequential and no_rewrite only steer how timm rewrites a model to reach its maps, which
# ours needs no rewrite for, so they are accepted and change nothing.
_FEATURE_CFG_KEYS = {"feature_cls", "out_indices", "flatten_sequential", "no_rewrite"}


def _feature_cls(feature_cls: object, feature_cfg: object, kwargs: dict) -> str:
    """The feature class named by ``feature_cls`` / ``feature_cfg`` (timm's rules); ``out_indices`` goes to kwargs.

    Raises:
        TypeError: a feature_cfg that is not a dict or has keys not supported here, or a class object.
        ValueError: an unknown feature class name.
    """
    cfg = dict(feature_cfg or {}) if isinstance(feature_cfg, dict | type(None)) else None
    if cfg is None:
        raise TypeError(f"feature_cfg must be a dict, got {type(feature_cfg).__name__}")
    unknown = set(cfg) - _FEATURE_CFG_KEYS
    if unknown:
        raise TypeError(
            f"feature_cfg key(s) {sorted(unknown)} are not supported by mixnet's backbones; "
            f"supported: {sorted(_FEATURE_CFG_KEYS)}"
        )
    if "out_indices" in cfg:
        kwargs.setdefault("out_indices", tuple(cfg["out_indices"]))  # the keyword wins, as in timm
    name = cfg.get("feature_cls", "list") if feature_cls is None else feature_cls
    if not isinstance(name, str):
        raise TypeError(f"feature_cls must be one of {list(FEATURE_CLASSES)} by name, got {name!r}")
    name = "hook" if "hook" in name.lower() else name.lower()  # timm: any name containing "hook"
    if name not in FEATURE_CLASSES:
        raise ValueError(f"unknown feature_cls {name!r}; choose from {list(FEATURE_CLASSES)}")
    return name


def create_model(
    name: str,
    *,
    pretrained: bool | str | Path = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float = 0.0,
    features_only: bool = False,
    feature_cls: str | None = None,
    feature_cfg: dict | None = None,
    kernels: KernelSpec | str | None = None,
    **kwargs,
) -> nn.Module:
    """Builds a registered MixNet (or MobileNet baseline), as ``timm.create_model`` does.

    Args:
        name: a name from :func:`mixnet.list_models`, or an architecture file (``.json``, see
            :mod:`mixnet.models.archfile`).
        pretrained: False for random TF-style init; True for timm's ImageNet weights (downloaded
            through huggingface_hub); or a path to a model file (:func:`mixnet.io.load_model` reads
            the same files). With another ``num_classes`` than the weights', the classifier is freshly
            initialised (with a warning); another ``in_chans`` adapts the stem.
        num_classes: classifier outputs; 0 for none (``forward`` returns pooled features).
        in_chans: input channels.
        drop_rate: dropout before the classifier (default: the model's, 0.2 for S, 0.25 otherwise).
        drop_path_rate: stochastic depth rate of the last block.
        features_only: return a backbone (:class:`MixNetFeatures`) giving the maps at strides 2..32.
        feature_cls: with ``features_only``, timm's feature class by name: ``list`` (default), ``hook``,
            ``getter`` (a list of maps), ``dict`` (``{str(out_index): map}``) or ``fx`` (the backbone
            traced by torch.fx, a ``GraphModule`` returning the list).
        feature_cfg: with ``features_only``, timm's ``feature_cfg`` dict: ``feature_cls``, ``out_indices``
            (``flatten_sequential`` and ``no_rewrite`` are accepted and change nothing here).
        kernels: give every depthwise conv this kernel (the paper's kernel study): a
            :class:`~mixnet.models.configs.KernelSpec` or its text, e.g. ``"k7"``, ``"k3.5.7"``,
            ``"k3.5.7.9-exp"`` (exponential split), ``"k9-dil"`` (dilated 3x3).
        **kwargs: ``global_pool`` (``avg`` or ``''``), ``out_indices`` (with ``features_only``),
            ``bn_momentum``, ``fuse_mixconv`` (see :class:`MixNet`), or an architecture override
            (``width_mult``, ``depth_mult``, ``head_channels``, ``padding``, ``bn_eps``, ``activation``,
            ``scale_head``, ``dw_split``, ``dw_dilated``).

    Raises:
        ValueError: an unknown name or a bad argument value.
        TypeError: an unknown keyword argument (or one that does not apply to this kind of model).
    """
    if is_arch_file(name):  # a network as data (a searched or hand-written architecture)
        _, base, _ = load_arch(name)
        entry = ModelEntry(str(name), base)
        if pretrained is True:
            raise ValueError(f"{name} is an architecture file: it has no published weights; pass a model file")
    else:
        entry = get_entry(name)
    if (feature_cls is not None or feature_cfg is not None) and not features_only:
        raise TypeError("feature_cls and feature_cfg apply to a features_only=True model")
    kind = _feature_cls(feature_cls, feature_cfg, kwargs) if features_only else None
    allowed = CONFIG_KWARGS | (_FEATURES_KWARGS if features_only else _CLASSIFIER_KWARGS)
    unknown = set(kwargs) - allowed
    if unknown:
        kind = "a features_only model" if features_only else "a classifier"
        raise TypeError(f"create_model() got argument(s) {sorted(unknown)} that {kind} does not take")
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in CONFIG_KWARGS}
    config = entry.config.replace(**overrides) if overrides else entry.config
    config = config.with_kernels(kernels) if kernels is not None else config
    model: nn.Module
    if features_only:
        backbone = MixNetFeatureDict if kind == "dict" else MixNetFeatures
        model = backbone(config, in_chans=in_chans, drop_path_rate=drop_path_rate, **kwargs)
    else:
        model = MixNet(
            config,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            **kwargs,
        )
    registered = None if is_arch_file(name) else name  # a file's model records its whole config
    model.pretrained_cfg = {
        **default_pretrained_cfg(registered, model.num_classes, entry.preprocess),
        "hf_hub_id": entry.hf_hub_id,
        "tag": entry.hf_hub_id.split(".", 1)[-1] if entry.hf_hub_id else None,
    }
    if pretrained:
        from mixnet.io.pretrained import load_pretrained

        load_pretrained(model, entry, pretrained)
    if kind == "fx":  # traced last, so the graph holds the loaded weights
        return fx_features(model)
    return model

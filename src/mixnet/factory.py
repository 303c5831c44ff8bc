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
from mixnet.models.mixnet import MixNet, MixNetFeatures, default_pretrained_cfg
from mixnet.models.registry import ModelEntry, get_entry

# create_model keywords that change the architecture: every MixNetConfig field except the block table.
CONFIG_KWARGS = frozenset(f.name for f in dataclasses.fields(MixNetConfig)) - {"stages", "stem_channels"}
_CLASSIFIER_KWARGS = {"global_pool", "bn_momentum", "fuse_mixconv"}
_FEATURES_KWARGS = {"out_indices", "bn_momentum", "fuse_mixconv"}


def create_model(
    name: str,
    *,
    pretrained: bool | str | Path = False,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float = 0.0,
    features_only: bool = False,
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
        model = MixNetFeatures(config, in_chans=in_chans, drop_path_rate=drop_path_rate, **kwargs)
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
    return model

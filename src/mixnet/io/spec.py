"""What a model file is: :class:`ModelSpec`, everything needed to rebuild a model and use it.

A spec names the registered architecture, the architecture fields that differ from it (width, head,
BN eps, padding, ... : any :class:`mixnet.models.configs.MixNetConfig` field, so a new field needs no
new code here), the class count and names, the input channels, and the eval preprocessing. It is
written the same way into both kinds of file this project writes:

- ``.safetensors`` model files: one metadata entry, ``mixnet.spec``, holding the spec as JSON;
- ``.pth`` training checkpoints: a ``spec`` entry holding the same dict.

:func:`mixnet.io.load.load_model` reads it back; files written before specs existed (a flat
``model_name`` / ``img_size`` / ``class_names`` / ``args`` layout) are translated by
:func:`spec_from_legacy`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mixnet.models.configs import MixNetConfig
from mixnet.models.mixnet import MixNet, default_pretrained_cfg
from mixnet.models.preprocess import Preprocess
from mixnet.models.registry import get_entry

SPEC_KEY = "mixnet.spec"  # the safetensors metadata entry and (as "spec") the checkpoint entry
SPEC_FORMAT = 1


class SpecError(ValueError):
    """A model spec that is malformed or names something unknown."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model and use it (weights aside).

    Attributes:
        architecture: registered model name (None for a model built from a config of its own; then
            ``config`` holds the whole architecture).
        num_classes: classifier outputs (0: no classifier).
        in_chans: input image channels.
        config: :class:`MixNetConfig` fields that differ from the registered architecture's, as JSON
            values (``stages`` as TF block strings).
        class_names: class names in output order, when known.
        preprocess: the eval preprocessing the model expects.
    """

    architecture: str | None
    num_classes: int = 1000
    in_chans: int = 3
    config: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)

    def __post_init__(self) -> None:
        for key in ("num_classes", "in_chans"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(f"{key} must be an integer, got {value!r}")
        if self.class_names is not None:
            names = tuple(self.class_names)
            if not all(isinstance(c, str) for c in names):
                raise SpecError("class_names must be strings")
            if len(set(names)) != len(names):
                raise SpecError("class_names has duplicates")
            if self.num_classes and len(names) != self.num_classes:
                raise SpecError(f"{len(names)} class names for a classifier of {self.num_classes} outputs")
            object.__setattr__(self, "class_names", names)
        if self.num_classes < 0 or self.in_chans < 1:
            raise SpecError(f"need num_classes >= 0 and in_chans >= 1, got {self.num_classes}, {self.in_chans}")
        if self.architecture is None and not self.config:
            raise SpecError("a spec without an architecture name needs the whole config")
        self.arch_config()  # fails early, naming an unknown architecture or config field

    def arch_config(self) -> MixNetConfig:
        """The architecture: the registered config with :attr:`config` applied.

        Raises:
            SpecError: an unknown architecture name or config field, or a bad value.
        """
        try:
            if self.architecture is None:
                return MixNetConfig.from_dict(self.config)
            return get_entry(self.architecture).config.updated(self.config)
        except (ValueError, TypeError, KeyError) as e:
            raise SpecError(f"model spec: {e}") from e

    def build(self, **kwargs) -> nn.Module:
        """A randomly initialised model of this spec (``kwargs``: other :class:`MixNet` options)."""
        model = MixNet(self.arch_config(), num_classes=self.num_classes, in_chans=self.in_chans, **kwargs)
        apply_to_model(model, self)
        return model

    def to_dict(self) -> dict:
        """Plain JSON-able values, with a ``format`` version."""
        d = dataclasses.asdict(self)
        d["config"] = dict(self.config)
        d["class_names"] = list(self.class_names) if self.class_names is not None else None
        d["preprocess"] = self.preprocess.to_dict()
        return {"format": SPEC_FORMAT, **d}

    def to_json(self) -> str:
        """The spec as one line of JSON (a safetensors metadata value)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Rebuilds a spec from :meth:`to_dict` output.

        Raises:
            SpecError: unknown keys, a newer format, or bad values (each named).
        """
        if not isinstance(d, Mapping):
            raise SpecError(f"a model spec must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        version = d.pop("format", SPEC_FORMAT)
        if not isinstance(version, int) or version > SPEC_FORMAT:
            raise SpecError(f"model spec format {version!r} is newer than this mixnet reads ({SPEC_FORMAT}): upgrade")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SpecError(f"unknown model spec field(s): {', '.join(sorted(unknown))}")
        pre = d.get("preprocess") or {}
        if not isinstance(pre, Mapping):
            raise SpecError("model spec: preprocess must be an object")
        known = {f.name for f in dataclasses.fields(Preprocess)}
        if set(pre) - known:
            raise SpecError(f"unknown preprocess field(s): {', '.join(sorted(set(pre) - known))}")
        try:
            d["preprocess"] = Preprocess(**pre)
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise SpecError(f"model spec: {e}") from e

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parses :meth:`to_json` output."""
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise SpecError(f"model spec is not JSON: {e}") from e

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        class_names: list[str] | tuple[str, ...] | None = None,
        preprocess: Preprocess | None = None,
    ) -> ModelSpec:
        """The spec of a built :class:`MixNet`: its architecture, head and ``pretrained_cfg`` preprocessing."""
        if getattr(model, "features_only", False):
            raise ValueError(
                "a features_only backbone has no model-file spec: save the classifier it came from, or its "
                "state_dict() for create_model(..., features_only=True, pretrained=path)"
            )
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        name = cfg.get("architecture")
        config = model.config
        if name is not None:
            diff = get_entry(name).config.diff(config)
        else:
            diff = config.to_dict()
        return cls(
            architecture=name,
            num_classes=int(getattr(model, "num_classes", 0)),
            in_chans=int(model.in_chans),
            config=diff,
            class_names=tuple(class_names) if class_names is not None else None,
            preprocess=preprocess or preprocess_of(model),
        )

    def replace(self, **changes) -> ModelSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def preprocess_of(model: nn.Module) -> Preprocess:
    """The eval preprocessing in a model's timm-style ``pretrained_cfg`` (defaults where it says nothing)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    return Preprocess().replace(
        img_size=int(size[-1]) if size else None,
        crop_pct=cfg.get("crop_pct"),
        interpolation=cfg.get("interpolation"),
        mean=cfg.get("mean"),
        std=cfg.get("std"),
    )


def apply_to_model(model: nn.Module, spec: ModelSpec) -> None:
    """Writes the spec's name and preprocessing into the model's ``pretrained_cfg``."""
    model.pretrained_cfg = {
        **getattr(model, "pretrained_cfg", {}),
        **default_pretrained_cfg(spec.architecture, getattr(model, "num_classes", 0), spec.preprocess),
    }


# Architecture options the first training runs recorded in a checkpoint's ``args`` or as flat
# safetensors metadata, with their types (safetensors metadata is str -> str).
_LEGACY_CONFIG = {"width_mult": float, "depth_mult": float, "head_channels": int, "bn_eps": float, "padding": str}
_LEGACY_PREPROCESS = {"img_size": int, "crop_pct": float, "interpolation": str}


def spec_from_legacy(meta: Mapping[str, Any], num_classes: int | None, source: str) -> ModelSpec | None:
    """Translates the metadata of a file written before specs existed; None when it has none.

    ``meta`` is a training checkpoint's top level (``model_name``, ``img_size``, ``class_names``, ``args``)
    or a safetensors file's flat metadata (the same names as strings, ``class_names`` as JSON).
    """
    name = meta.get("model_name")
    if not name:
        return None
    options = dict(meta)
    if isinstance(meta.get("args"), Mapping):
        options |= meta["args"]
    if isinstance(meta.get("model_kwargs"), str):
        try:
            extra = json.loads(meta["model_kwargs"])
        except json.JSONDecodeError as e:
            raise SpecError(f"{source}: model_kwargs metadata is not JSON: {e}") from e
        if not isinstance(extra, Mapping):
            raise SpecError(f"{source}: model_kwargs metadata is not a JSON object")
        options |= extra
    names = meta.get("class_names")
    if isinstance(names, str):
        try:
            names = json.loads(names)
        except json.JSONDecodeError as e:
            raise SpecError(f"{source}: class_names metadata is not JSON: {e}") from e

    def typed(keys: Mapping[str, type]) -> dict:
        out = {}
        for key, kind in keys.items():
            value = options.get(key)
            if value is None or value == "":
                continue
            try:
                out[key] = kind(value)
            except (TypeError, ValueError):
                raise SpecError(f"{source}: {key} must be a {kind.__name__}, got {value!r}") from None
        return out

    config = typed(_LEGACY_CONFIG)
    try:
        base = get_entry(name).config
    except ValueError as e:
        raise SpecError(f"{source}: {e}") from e
    config = {k: v for k, v in config.items() if getattr(base, k) != v}
    classes = num_classes if num_classes is not None else (len(names) if names else 1000)
    return ModelSpec(
        architecture=name,
        num_classes=classes,
        config=config,
        class_names=tuple(names) if names else None,
        preprocess=Preprocess().replace(**typed(_LEGACY_PREPROCESS)),
    )

"""Study files: which baselines, kernel variants, data, recipe, seeds and image size a kernel study runs.

A study is a small TOML (or YAML) file; every key is checked before anything trains, so a typo, an
unknown model, a malformed kernel spec or a missing data folder is an error naming it. The built-in
studies (``mixnet study list``) are such files shipped with the package.

Example::

    name = "my-study"
    models = ["mobilenet_v2", "mobilenet_v1"]   # registered baselines (one curve family each)
    width_mult = 0.5                   # optional architecture override, for every model
    variants = ["k3", "k5", "k7", "k3.5", "k3.5.7"]   # kernel specs (see KernelSpec)
    seeds = [0, 1, 2]
    data = "/data/my-imagefolder"      # ImageFolder root, or digits / cluttered-digits / cued-digits
    img_size = 128
    preset = "short"                   # training preset the [train] options start from
    # recipe = "cluttered-digits"      # or a named recipe (preset and options) of mixnet.experiment.runs
    paper = ["fig4_v2"]                # the paper's curves to draw beside ours

    [train]                            # any `mixnet train` option (TrainConfig field)
    epochs = 30

    [latency]                          # the inference timing of every variant
    batch_size = 1

    [[contrasts]]                      # paired comparisons b - a, fixed before anything trains
    name = "k5 vs k3"
    a = "mobilenet_v2-k3"              # a variant: model-kernels (kernels alone with one model)
    b = "mobilenet_v2-k5"

    [[contrasts]]
    name = "MobileNetV2 over V1"
    a = "mobilenet_v1-k3"
    b = "mobilenet_v2-k3"
    positive_control = true            # a difference expected to be large: shows the design detects one
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mixnet.data.datasets import BUILTIN_SETS
from mixnet.errors import MixnetError, require
from mixnet.experiment.runs import RECIPES, Recipe
from mixnet.models.archfile import is_arch_file, load_arch
from mixnet.models.complexity import config_complexity
from mixnet.models.configs import KernelSpec, MixNetConfig
from mixnet.models.registry import list_models, resolve_config
from mixnet.study.paper import PAPER_CURVES
from mixnet.train.config import PRESETS, TrainConfig

BUILTIN_DIR = "builtin"


def arch_name(model: str) -> str:
    """A study's name for a model entry: a registered name as it is, an architecture file by its stem."""
    return Path(model).stem if is_arch_file(model) else model


# Study-level keys that set training options themselves; [train] must not repeat them.
_OWN_TRAIN_KEYS = {"model", "data", "img_size", "seed", "kernels", "width_mult", "out", "resume", "preset"}
_OWN_TRAIN_KEYS |= {"seeded_augmentation"}  # every study run is paired


class StudyError(MixnetError, ValueError):
    """A study file that cannot run: names the file and the bad key or value."""


@dataclass(frozen=True)
class LatencySettings:
    """How each variant's inference latency is measured (the ``[latency]`` table).

    Attributes:
        batch_size: images per forward pass.
        threads: CPU threads (1: robust on shared machines).
        rounds: interleaved timing rounds (medians are reported).
        device: ``cpu`` or ``cuda``.
    """

    batch_size: int = 1
    threads: int = 1
    rounds: int = 15
    device: str = "cpu"


WIDTH_MARK = "@w"  # a variant at its own width: ``k3@w0.5``


def parse_variant(text: str) -> tuple[str, float | None]:
    """``(canonical kernel spec, width multiplier or None)`` of a variant's text: ``k3.5.7`` or ``k3@w0.5``.

    Raises:
        ValueError: a malformed kernel spec or width.
    """
    kernels, _, width = str(text).partition(WIDTH_MARK)
    canonical = str(KernelSpec.parse(kernels))
    if not _:
        return canonical, None
    try:
        value = float(width)
    except ValueError:
        raise ValueError(f"width after {WIDTH_MARK!r} must be a number, got {width!r}") from None
    if not value > 0:
        raise ValueError(f"width must be > 0, got {width!r}")
    return canonical, value


def variant_text(kernels: str, width_mult: float | None) -> str:
    """The canonical text of a variant: its kernel spec, with ``@w<width>`` when it has a width of its own."""
    return kernels if width_mult is None else f"{kernels}{WIDTH_MARK}{width_mult:g}"


@dataclass(frozen=True)
class Variant:
    """One trained point of a study: a baseline with one kernel spec (and optionally a width of its own), at one
    seed.

    Attributes:
        model: registered baseline, or the name of an architecture file of the study (its stem).
        kernels: the depthwise kernel spec (text form).
        seed: training seed.
        width_mult: this variant's own width multiplier (None: the study's), e.g. a positive control.
    """

    model: str
    kernels: str
    seed: int
    width_mult: float | None = None

    @property
    def family(self) -> str:
        """The model with its own width, if any (``mobilenet_v2@w0.5``): a curve of its own in the report."""
        return self.model if self.width_mult is None else f"{self.model}{WIDTH_MARK}{self.width_mult:g}"

    @property
    def key(self) -> str:
        """The architecture's id, shared by its seeds: ``mobilenet_v2-k3.5.7``, ``mobilenet_v2@w0.5-k3``."""
        return f"{self.family}-{self.kernels}"

    @property
    def run_id(self) -> str:
        """The run's id and folder name: ``mobilenet_v2-k3.5.7-s0``."""
        return f"{self.key}-s{self.seed}"


@dataclass(frozen=True)
class Contrast:
    """A paired comparison ``b - a`` of two variants, named in the study file before anything trains.

    Attributes:
        name: what the contrast tests, e.g. ``k5 vs k3``.
        a: the reference variant's key (``model-kernels``).
        b: the contender's key.
        positive_control: a difference known to matter, reported as the check that the design detects one.
    """

    name: str
    a: str
    b: str
    positive_control: bool = False


_CONTRAST_KEYS = {f.name for f in dataclasses.fields(Contrast)}


@dataclass(frozen=True)
class Study:
    """A parsed, validated study file.

    Attributes:
        name: the study's name.
        description: one line on what it reproduces.
        models: registered baselines.
        variants: kernel specs (canonical text form), in file order.
        seeds: training seeds.
        data: ImageFolder root or a built-in data set name.
        img_size: training and evaluation resolution.
        preset: the training recipe the ``train`` options are applied to.
        train: overrides of the recipe (TrainConfig fields).
        width_mult: width multiplier of every model (None: the model's own).
        paper: names of the paper's reference curves to plot (:data:`mixnet.study.paper.PAPER_CURVES`).
        latency: latency measurement settings.
        contrasts: paired comparisons fixed in the file (none: the report derives trend contrasts itself).
        source: the file it was read from (or ``builtin:<name>``).
    """

    name: str
    models: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    data: str
    img_size: int
    preset: str = "short"
    train: dict = field(default_factory=dict)
    width_mult: float | None = None
    paper: tuple[str, ...] = ()
    latency: LatencySettings = LatencySettings()
    contrasts: tuple[Contrast, ...] = ()
    description: str = ""
    source: str = ""

    def runs(self) -> list[Variant]:
        """Every (model, variant, seed) run, seed-major: all variants of seed 0 first, so a partial study
        already covers every variant once."""
        return [
            Variant(m, *parse_variant(v)[:1], s, parse_variant(v)[1])
            for s in self.seeds
            for m in self._models()
            for v in self.variants
        ]

    def architectures(self) -> list[Variant]:
        """One entry per (model, variant), seed 0 as a placeholder."""
        return [v for v in self.runs() if v.seed == self.seeds[0]]

    def _models(self) -> list[str]:
        return [arch_name(m) for m in self.models]

    def arch_file(self, model: str) -> Path | None:
        """The architecture file a model name of this study stands for (None: a registered model)."""
        for m in self.models:
            if is_arch_file(m) and arch_name(m) == model:
                return self.folder() / m
        return None

    def folder(self) -> Path:
        """Where the study's architecture files are looked up: the study file's folder (the package's for a
        built-in study)."""
        if self.source.startswith("builtin:") or not self.source:
            return Path(str(resources.files("mixnet.study") / BUILTIN_DIR))
        return Path(self.source).parent

    def arch_overrides(self, variant: Variant | None = None) -> dict:
        """Architecture overrides: the width multiplier (the variant's own, else the study's), and a head width
        from ``train``."""
        width = variant.width_mult if variant is not None and variant.width_mult is not None else self.width_mult
        out = {} if width is None else {"width_mult": width}
        if self.train.get("head_channels") is not None:
            out["head_channels"] = self.train["head_channels"]
        return out

    def model_source(self, variant: Variant) -> str:
        """What ``create_model`` builds a variant from: a registered name or the architecture file's path."""
        path = self.arch_file(variant.model)
        return variant.model if path is None else str(path)

    def model_config(self, variant: Variant) -> MixNetConfig:
        """A variant's architecture, with the study's overrides and its kernel spec."""
        path = self.arch_file(variant.model)
        overrides = self.arch_overrides(variant)
        if path is None:
            return resolve_config(variant.model, variant.kernels, **overrides)
        config = load_arch(path)[1]
        return (config.replace(**overrides) if overrides else config).with_kernels(variant.kernels)

    def train_config(self, variant: Variant, out: str | Path, **extra) -> TrainConfig:
        """The training configuration of one run."""
        path = self.arch_file(variant.model)
        where = {"model": variant.model} if path is None else {"arch": str(path)}
        return Recipe(self.preset, self.train).config(
            **where,
            kernels=variant.kernels,
            seed=variant.seed,
            data=self.data,
            img_size=self.img_size,
            out=str(out),
            width_mult=self.arch_overrides(variant).get("width_mult"),
            **{"seeded_augmentation": True, **extra},  # paired seeds: only the architecture differs
        )


# "recipe" names a preset with its options; it is read into ``preset`` and ``train``, not kept.
_KEYS = ({f.name for f in dataclasses.fields(Study)} - {"source"}) | {"recipe"}


def builtin_studies() -> list[str]:
    """Names of the built-in studies."""
    folder = resources.files("mixnet.study") / BUILTIN_DIR
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def builtin_text(name: str) -> str:
    """The TOML text of a built-in study."""
    if name not in builtin_studies():
        raise StudyError(f"unknown built-in study {name!r}; built-in studies: {', '.join(builtin_studies())}")
    return (resources.files("mixnet.study") / BUILTIN_DIR / f"{name}.toml").read_text()


def _parse_toml(text: str, source: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = require("tomli", "train", "reading TOML study files on Python 3.10")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{source}: not valid TOML: {e}") from None


def _parse_yaml(text: str, source: str) -> dict:
    yaml = require("yaml", "train", "reading YAML study files")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise StudyError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise StudyError(f"{source}: a study file must be a mapping of keys to values")
    return data


def load_study(name_or_path: str | Path, overrides: dict | None = None, *, check_data: bool = True) -> Study:
    """Reads and validates a study: a built-in name (``small``) or a .toml/.yaml/.yml file.

    Args:
        name_or_path: built-in study name or study file.
        overrides: top-level keys replacing the file's (``data``, ``seeds``); a ``train`` table is merged
            into the file's.
        check_data: require the data folder to exist (off to inspect a study on another machine).

    Raises:
        StudyError: an unreadable file, an unknown key, model, kernel spec, training option or data path
            (named), or a bad value.
    """
    text_name = str(name_or_path)
    path = Path(text_name)
    if path.suffix.lower() in (".toml", ".yaml", ".yml") or path.is_file():
        try:
            text = path.read_text()
        except OSError as e:
            raise StudyError(f"cannot read study file {text_name}: {e.strerror or e}") from None
        source = text_name
        raw = _parse_yaml(text, source) if path.suffix.lower() in (".yaml", ".yml") else _parse_toml(text, source)
    else:
        source = f"builtin:{text_name}"
        raw = _parse_toml(builtin_text(text_name), source)
    overrides = dict(overrides or {})
    if "train" in overrides:
        overrides["train"] = {**raw.get("train", {}), **overrides["train"]}
    return study_from_dict({**raw, **overrides}, source, check_data=check_data)


def _need(ok: bool, source: str, msg: str) -> None:
    if not ok:
        raise StudyError(f"{source}: {msg}")


def study_from_dict(raw: dict, source: str = "study", *, check_data: bool = True) -> Study:
    """Builds and validates a :class:`Study` from the parsed file contents (``check_data``: the data must exist)."""
    unknown = set(raw) - _KEYS
    _need(not unknown, source, f"unknown key(s) {', '.join(sorted(unknown))}; known keys: {', '.join(sorted(_KEYS))}")
    missing = {"name", "models", "variants", "seeds", "data", "img_size"} - set(raw)
    _need(not missing, source, f"missing key(s) {', '.join(sorted(missing))}")
    d = dict(raw)
    if "recipe" in d:
        name = d.pop("recipe")
        _need(name in RECIPES, source, f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
        _need("preset" not in d, source, "give a recipe or a preset, not both")
        _need(isinstance(d.get("train", {}), dict), source, "train must be a table of training options")
        d["preset"] = RECIPES[name].preset
        d["train"] = {**RECIPES[name].options, **d.get("train", {})}
    for key in ("models", "variants", "seeds", "paper"):
        if key in d:
            value = d[key]
            ok = isinstance(value, list | tuple) and (len(value) > 0 or key == "paper")
            _need(ok, source, f"{key} must be a {'' if key == 'paper' else 'non-empty '}list, got {value!r}")
            d[key] = tuple(value)
    latency = d.get("latency", {})
    _need(isinstance(latency, dict), source, "latency must be a table of settings")
    known_latency = {f.name for f in dataclasses.fields(LatencySettings)}
    unknown_latency = set(latency) - known_latency
    _need(
        not unknown_latency,
        source,
        f"unknown latency setting(s) {', '.join(sorted(unknown_latency))}; known: {', '.join(sorted(known_latency))}",
    )
    d["latency"] = LatencySettings(**latency)
    _need(isinstance(d.get("train", {}), dict), source, "train must be a table of training options")
    d["contrasts"] = _contrasts(d.get("contrasts", []), source)
    study = Study(source=source, **d)
    validate(study, check_data=check_data)
    return study


def _contrasts(raw, source: str) -> tuple[Contrast, ...]:
    """The ``[[contrasts]]`` tables as :class:`Contrast` (their variants are checked by :func:`validate`)."""
    _need(isinstance(raw, list | tuple), source, "contrasts must be a list of tables ([[contrasts]])")
    out = []
    for i, c in enumerate(raw, 1):
        _need(isinstance(c, dict), source, f"contrast {i} must be a table with name, a and b")
        unknown = set(c) - _CONTRAST_KEYS
        _need(
            not unknown,
            source,
            f"contrast {i}: unknown key(s) {', '.join(sorted(unknown))}; known: a, b, name, positive_control",
        )
        missing = {"name", "a", "b"} - set(c)
        _need(not missing, source, f"contrast {i}: missing key(s) {', '.join(sorted(missing))}")
        _need(
            all(isinstance(c[k], str) and c[k] for k in ("name", "a", "b")),
            source,
            f"contrast {i}: name, a and b must be non-empty strings",
        )
        _need(
            isinstance(c.get("positive_control", False), bool),
            source,
            f"contrast {c['name']!r}: positive_control must be true or false",
        )
        out.append(Contrast(**c))
    return tuple(out)


def variant_key(study: Study, ref: str) -> str:
    """The key (``model-variant``, canonical spec) of a variant named in a contrast: a key such as
    ``mobilenet_v2-k3.5`` or ``mobilenet_v2@w0.5-k3``, or with one model the variant alone (``k3.5``,
    ``k3@w0.5``).

    Raises:
        StudyError: no variant of the study has that name.
    """
    src = study.source or study.name
    archs = study.architectures()
    by_name: dict[str, str] = {}
    for v in archs:
        by_name[v.key] = v.key
        by_name[f"{v.model}-{variant_text(v.kernels, v.width_mult)}"] = v.key
        if len(study.models) == 1:
            by_name[variant_text(v.kernels, v.width_mult)] = v.key
    candidates = [ref]
    for m in {v.model for v in archs}:  # canonicalise the kernel spec after a model prefix (k5.3 -> k3.5)
        if ref.startswith(m + "-"):
            candidates.append(ref[: len(m) + 1] + _canonical(ref[len(m) + 1 :]))
    candidates.append(_canonical(ref))
    for c in candidates:
        if c in by_name:
            return by_name[c]
    known = [v.key for v in archs]
    raise StudyError(
        f"{src}: contrast variant {ref!r} is not a variant of this study; variants: {', '.join(known)}"
        + ("" if len(study.models) == 1 else " (name them model-kernels)")
    )


def _canonical(text: str) -> str:
    try:
        return variant_text(*parse_variant(text))
    except ValueError:
        return text


def _check_contrasts(study: Study) -> None:
    """Resolves every contrast's variants to keys; unknown variants, self-comparisons and repeats are errors."""
    src = study.source or study.name
    names = [c.name for c in study.contrasts]
    repeated = sorted({n for n in names if names.count(n) > 1})
    _need(not repeated, src, f"contrast name(s) repeat: {', '.join(repeated)}")
    resolved = []
    for c in study.contrasts:
        a, b = variant_key(study, c.a), variant_key(study, c.b)
        _need(a != b, src, f"contrast {c.name!r} compares {a} with itself")
        resolved.append(Contrast(c.name, a, b, c.positive_control))
    pairs = [frozenset((c.a, c.b)) for c in resolved]  # b - a and a - b are one comparison
    same = sorted({f"{c.b} - {c.a}" for c in resolved if pairs.count(frozenset((c.a, c.b))) > 1})
    _need(not same, src, f"contrasts repeat a comparison: {', '.join(same)}")
    object.__setattr__(study, "contrasts", tuple(resolved))


def validate(study: Study, *, check_data: bool = True) -> None:
    """Checks everything that can be checked before training (see :func:`load_study`)."""
    src = study.source or study.name
    _need(isinstance(study.name, str) and bool(study.name), src, "name must be a non-empty string")
    known = list_models()
    for m in study.models:
        if is_arch_file(m):
            try:
                load_arch(study.folder() / m)
            except (OSError, ValueError) as e:
                raise StudyError(f"{src}: architecture file {m!r} (beside the study file): {e}") from None
        else:
            _need(m in known, src, f"unknown model {m!r}; known models: {', '.join(known)} (or an architecture .json)")
    names = [arch_name(m) for m in study.models]
    _need(len(set(names)) == len(names), src, f"models repeat: {list(study.models)}")
    canonical = []
    for v in study.variants:
        try:
            canonical.append(variant_text(*parse_variant(str(v))))
        except ValueError as e:
            raise StudyError(f"{src}: variant {v!r}: {e}") from None
    _need(len(set(canonical)) == len(canonical), src, f"variants repeat: {list(study.variants)}")
    object.__setattr__(study, "variants", tuple(canonical))
    _need(all(isinstance(s, int) for s in study.seeds), src, f"seeds must be integers, got {list(study.seeds)}")
    _need(len(set(study.seeds)) == len(study.seeds), src, f"seeds repeat: {list(study.seeds)}")
    _need(isinstance(study.img_size, int) and study.img_size >= 8, src, "img_size must be an integer >= 8")
    _need(study.preset in PRESETS, src, f"unknown preset {study.preset!r}; presets: {', '.join(PRESETS)}")
    for name in study.paper:
        _need(name in PAPER_CURVES, src, f"unknown paper curve {name!r}; known: {', '.join(PAPER_CURVES)}")
    lat = study.latency
    _need(lat.batch_size >= 1 and lat.threads >= 1 and lat.rounds >= 1, src, "latency values must be >= 1")
    _need(lat.device in ("cpu", "cuda"), src, f"latency device must be cpu or cuda, got {lat.device!r}")
    repeated = _OWN_TRAIN_KEYS & set(study.train)
    _need(not repeated, src, f"[train] must not set {', '.join(sorted(repeated))}: they are study keys")
    _check_contrasts(study)
    _need(isinstance(study.data, str), src, f"data must be a string, got {study.data!r}")
    if check_data:
        _need(bool(study.data), src, "the study names no data: pass --data (an ImageFolder root such as ImageNet)")
        _need(
            study.data in BUILTIN_SETS or Path(study.data).is_dir(),
            src,
            f"data {study.data!r} is neither a folder nor a built-in data set ({', '.join(BUILTIN_SETS)})",
        )
        if study.data not in BUILTIN_SETS:
            missing = [split for split in ("train", "val") if not (Path(study.data) / split).is_dir()]
            _need(not missing, src, f"data folder {study.data!r} has no {' or '.join(missing)}/ subfolder")
    for variant in study.architectures():
        try:
            study.train_config(variant, "unused")
            config_complexity(
                study.model_config(variant), study.img_size
            )  # splits every depthwise conv: too few channels fail here
        except ValueError as e:
            raise StudyError(f"{src}: variant {variant.key}: {e}") from None

"""Training configuration: one validated dataclass, two recipe presets, saved as JSON in every run.

Design after ConvNeXt/timm (a flat set of options, each documented once) but as a validated dataclass:
the field defaults are the paper's recipe (MixNet = MnasNet recipe, from the official TF code), and
``PRESETS["short"]`` overrides a few of them for short runs on small data. The command line is generated
from the fields and their ``help`` metadata, so options cannot drift from the library; the field names
are the command line's shared vocabulary (``--weights``, ``--out``, ``--batch-size``, ...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

from mixnet.atomic import atomic_write
from mixnet.models.archfile import is_arch_file, load_arch
from mixnet.models.configs import KernelSpec
from mixnet.models.preprocess import INTERPOLATIONS
from mixnet.models.registry import list_models
from mixnet.runtime import AMP_MODES


def option(default, help: str, **extra):  # noqa: A002 - mirrors argparse's keyword
    """A dataclass field carrying its command-line help (and ``choices``); the CLI is generated from these."""
    return field(default=default, metadata={"help": help, **extra})


OPTIMIZERS = ("rmsproptf", "sgd", "adamw")
SCHEDULES = ("step", "cosine")


@dataclass
class TrainConfig:
    """Every option of a training run. Field defaults are the paper's recipe (the ``paper`` preset)."""

    # Data
    data: str | None = option(
        None,
        "ImageFolder root with train/<class>/ and val/<class>/ folders, 'digits' for the built-in 5,000-image "
        "MNIST subset, 'cluttered-digits' for the same digits at random places on 60x60 canvases with "
        "clutter, or 'cued-digits' (three digits and a cue on 48x48 canvases; the label is the digit nearest the "
        "cue); none: the digits",
    )
    val_fraction: float = option(0.1, "built-in set: the fraction held out for validation (stratified, seeded)")
    img_size: int = option(224, "training and evaluation resolution")
    hflip: float = option(0.5, "horizontal flip probability (0 for digits and text)")
    crop_scale: tuple[float, float] = option((0.08, 1.0), "Inception crop area range (min max)")
    interpolation: str = option("bicubic", "resize interpolation", choices=INTERPOLATIONS)
    crop_pct: float = option(0.875, "eval center-crop fraction (resize to img_size/crop_pct, then crop)")
    auto_augment: str | None = option(
        None,
        "AutoAugment/RandAugment policy passed to the data transform, e.g. 'autoaugment' or 'rand-m9-n2'; none: off",
    )
    mixup: float = option(0.0, "mixup alpha (0: off)")
    cutmix: float = option(0.0, "cutmix alpha (0: off); with mixup, each batch picks one at random")
    workers: int = option(2, "data loader worker processes per training process")
    verify_images: bool = option(
        True,
        "image folders: decode every file once before training (rank 0 only under torchrun) and skip "
        "unreadable ones with a warning naming them; off: trust the file extensions (faster start on huge sets)",
    )
    strict_data: bool = option(False, "image folders: an unreadable image file stops the run instead of being skipped")
    # Model
    model: str = option("mixnet_s", f"architecture: {', '.join(list_models())}")
    arch: str | None = option(
        None,
        "architecture file (.json, e.g. from mixnet search) to train instead of the registered model",
    )
    width_mult: float | None = option(None, "override the model's width multiplier (smaller, faster nets)")
    head_channels: int | None = option(None, "override the head width (1536 in the paper)")
    kernels: str | None = option(
        None,
        "give every depthwise conv this kernel (the paper's kernel study): k7 (one size), k3.5.7 (MixConv "
        "groups), -exp for the exponential channel split, -dil for dilated 3x3s (k3.5.7.9-exp, k9-dil); "
        "none: the model's own",
    )
    weights: str | None = option(
        None,
        "initial weights: a model file (mixnet .safetensors/.pth, timm file), or 'hub' for timm's ImageNet weights "
        "(network needed); a classifier of another size is freshly initialised",
    )
    drop_rate: float | None = option(None, "dropout before the classifier; none: the model's (0.2 S, 0.25 M/L)")
    drop_path_rate: float = option(0.0, "stochastic depth rate of the last block")
    head_init_scale: float = option(
        1.0,
        "scale of the classifier's initial weights (ConvNeXt's option; 0 starts from zero logits, which "
        "keeps the 1536-wide head from starting with huge logits on short runs); not applied to pretrained weights",
    )
    bn_momentum: float = option(0.01, "BatchNorm momentum, PyTorch convention (TF's 0.99 = 0.01)")
    bn_eps: float = option(1e-3, "BatchNorm epsilon")
    # Optimisation
    epochs: int = option(350, "training epochs")
    batch_size: int = option(128, "images per process per step (global batch = this x processes x accum-steps)")
    accum_steps: int = option(1, "gradient accumulation: micro-batches per optimizer step")
    opt: str = option("rmsproptf", "optimizer (rmsproptf: TF RMSProp, eps inside the sqrt)", choices=OPTIMIZERS)
    lr: float | None = option(None, "peak learning rate; none: lr-base x global batch / 256")
    lr_base: float = option(0.016, "learning rate per 256 images, used when lr is not given")
    momentum: float = option(0.9, "momentum (rmsproptf, sgd); beta1 for adamw")
    rms_decay: float = option(0.9, "RMSProp squared-gradient decay (rmsproptf); beta2 for adamw")
    opt_eps: float = option(1e-3, "optimizer epsilon (inside the sqrt for rmsproptf)")
    weight_decay: float = option(1e-5, "weight decay on conv/linear weights (not BN, not biases)")
    sched: str = option("step", "schedule after warmup", choices=SCHEDULES)
    warmup_epochs: float = option(5.0, "linear warmup from 0 to the peak lr, in epochs")
    decay_epochs: float = option(2.4, "step schedule: decay every this many epochs (staircase)")
    decay_rate: float = option(0.97, "step schedule: multiply the lr by this at each decay")
    min_lr_ratio: float = option(0.0, "cosine schedule: final lr as a fraction of the peak")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy")
    ema_decay: float = option(0.9999, "weight EMA decay, used for eval and export (0: no EMA)")
    grad_clip: float = option(0.0, "clip the gradient norm to this (0: off)")
    # Performance
    amp: str = option(
        "auto",
        "mixed precision: auto (bf16 on CUDA where supported, else none), none, bf16, "
        "fp16 (CUDA only, with a grad scaler)",
        choices=AMP_MODES,
    )
    channels_last: bool = option(True, "channels_last memory format (faster depthwise convs on CPU and GPU)")
    compile: bool = option(False, "torch.compile the model")
    device: str = option("auto", "auto (cuda if available), cpu, cuda")
    threads: int = option(
        0,
        "CPU threads per process for torch ops (0: torch's default). On a shared CPU, 1 "
        "avoids threads spin-waiting on each other (seen here: 30x slower with 2 under load)",
    )
    # Run
    out: str | None = option(None, "run folder; none: runs/<model>-<time>, or the checkpoint's folder on resume")
    resume: str | None = option(
        None, "continue from a training checkpoint (model, EMA, optimizer, schedule, scaler, RNG, epoch)"
    )
    seed: int = option(0, "random seed")
    deterministic: bool = option(False, "deterministic algorithms (slower; bit-exact reruns and resumes)")
    seeded_augmentation: bool = option(
        False,
        "draw each image's augmentation from its own seed (run seed, epoch, index), not from the generator that "
        "model init and dropout consume: runs of different architectures with one seed see identical batches",
    )
    eval_every: int = option(1, "evaluate on the held-out split every this many epochs (and after the last)")
    eval_ema_only: bool = option(
        False,
        "with an EMA, evaluate only the EMA weights (the result) between epochs, and the raw weights after the "
        "last one: half the evaluation time",
    )
    progress: bool | None = option(
        None, "progress bars; none: only when stderr is a terminal (otherwise a line per epoch)"
    )
    preset: str = option("paper", "recipe the defaults came from (informational, set by from_preset)")

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(s) for s in self.crop_scale)  # JSON gives lists back
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad option."""

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"bad training option: {msg}")

        need(self.model in list_models(), f"model {self.model!r} is not one of {', '.join(list_models())}")
        if self.arch is not None:
            need(is_arch_file(self.arch), f"arch must be a .json architecture file, got {self.arch!r}")
            try:
                load_arch(self.arch)
            except ValueError as e:
                need(False, str(e))
        need(self.opt in OPTIMIZERS, f"opt {self.opt!r} is not one of {', '.join(OPTIMIZERS)}")
        need(self.sched in SCHEDULES, f"sched {self.sched!r} is not one of {', '.join(SCHEDULES)}")
        need(
            self.interpolation in INTERPOLATIONS, f"interpolation {self.interpolation!r} is not one of {INTERPOLATIONS}"
        )
        need(self.amp in AMP_MODES, f"amp {self.amp!r} is not one of {', '.join(AMP_MODES)}")
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), f"device {self.device!r}")
        for name in ("img_size", "epochs", "batch_size", "accum_steps", "eval_every"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(
            self.workers >= 0 and self.threads >= 0,
            f"workers and threads must be >= 0, got {self.workers}, {self.threads}",
        )
        for name in ("lr_base", "decay_epochs", "opt_eps"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        need(self.lr is None or (math.isfinite(self.lr) and self.lr > 0), f"lr must be > 0, got {self.lr}")
        for name in ("hflip", "label_smoothing", "momentum", "rms_decay", "min_lr_ratio", "decay_rate"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.opt in ("rmsproptf", "adamw"):
            # RMSProp's decay and Adam's betas at 1 never forget (a mean square stuck at its start value,
            # a bias correction dividing by zero); torch's AdamW would only say "Invalid beta parameter".
            need(
                self.momentum < 1 and self.rms_decay < 1,
                f"momentum and rms_decay must be < 1 for opt {self.opt} (they are "
                f"{'beta1 and beta2' if self.opt == 'adamw' else 'the momentum and mean-square decay'}), "
                f"got momentum={self.momentum}, rms_decay={self.rms_decay}",
            )
        need(0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}")
        need(0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        need(0 < self.crop_pct <= 1, f"crop_pct must be in (0, 1], got {self.crop_pct}")
        need(
            len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
            f"crop_scale must be two numbers 0 < min <= max <= 1, got {self.crop_scale}",
        )
        for name in (
            "weight_decay",
            "warmup_epochs",
            "mixup",
            "cutmix",
            "grad_clip",
            "drop_path_rate",
            "head_init_scale",
        ):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        need(self.drop_path_rate < 1, f"drop_path_rate must be < 1, got {self.drop_path_rate}")
        need(self.drop_rate is None or 0 <= self.drop_rate < 1, f"drop_rate must be in [0, 1), got {self.drop_rate}")
        need(self.width_mult is None or self.width_mult > 0, f"width_mult must be > 0, got {self.width_mult}")
        need(self.head_channels is None or self.head_channels >= 1, "head_channels must be >= 1")
        if self.kernels is not None:
            try:
                KernelSpec.parse(self.kernels)
            except ValueError as e:
                need(False, f"kernels: {e}")
        need(0 < self.bn_momentum <= 1 and self.bn_eps > 0, "bn_momentum must be in (0, 1] and bn_eps > 0")
        need(self.preset in PRESETS, f"preset {self.preset!r} is not one of {', '.join(PRESETS)}")

    def peak_lr(self, world_size: int = 1) -> float:
        """The peak learning rate: ``lr``, or ``lr_base`` scaled linearly by the global batch / 256."""
        if self.lr is not None:
            return self.lr
        return self.lr_base * self.batch_size * self.accum_steps * world_size / 256

    def to_dict(self) -> dict:
        """Plain JSON-able values (what the run folder and checkpoints store)."""
        d = dataclasses.asdict(self)
        d["crop_scale"] = list(self.crop_scale)
        return d

    def save(self, path: str | Path) -> None:
        """Writes the resolved configuration as JSON, atomically (a failed write keeps the previous file)."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuilds a config from :meth:`to_dict` output (older option names are renamed); unknown keys are an error."""
        d = {RENAMED.get(k, k): v for k, v in d.items()}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides) -> TrainConfig:
        """The preset's values with ``overrides`` on top."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[preset], **overrides, "preset": preset})

    def replace(self, **changes) -> TrainConfig:
        """A validated copy with some options changed."""
        return dataclasses.replace(self, **changes)


# Options renamed since checkpoints first stored their configuration: old name -> new name.
RENAMED = {"output": "out", "pretrained": "weights"}

# Presets are overrides of the field defaults (which are the paper's recipe).
PRESETS: dict[str, dict] = {
    "paper": {},
    # Short schedules on small data (minutes to an hour): AdamW + cosine after half an epoch of warmup,
    # standard BN momentum (the paper's 0.01 is too slow to settle in a few hundred steps), a faster EMA,
    # a milder crop (area 0.25-1: small data sets have small, centred objects) and a zero-initialised
    # classifier: with TF's init the 1536-wide head starts with logits of std ~5 (loss ~6 on 10 classes);
    # on the digits this took the first epoch from 20% to 50% held-out top-1 (measured, see docs/training.md).
    "short": {
        "epochs": 30,
        "batch_size": 64,
        "opt": "adamw",
        "lr_base": 8e-3,
        "momentum": 0.9,
        "rms_decay": 0.999,
        "opt_eps": 1e-8,
        "weight_decay": 0.05,
        "sched": "cosine",
        "warmup_epochs": 0.5,
        "min_lr_ratio": 0.01,
        "ema_decay": 0.998,
        "bn_momentum": 0.1,
        "bn_eps": 1e-5,
        "crop_scale": (0.25, 1.0),
        "head_init_scale": 0.0,
    },
}


# The built-in sets' own recipe values (``data`` None is the digits): small images, no flips (digits are not
# mirror-symmetric), mild crops (a strong crop cuts the digit out). ``mixnet train`` and the demo use them
# for options the user does not set.
DATA_DEFAULTS: dict[str, dict] = {
    "digits": {"img_size": 32, "hflip": 0.0, "crop_scale": (0.5, 1.0)},
    "cluttered-digits": {"img_size": 40, "hflip": 0.0, "crop_scale": (0.8, 1.0), "crop_pct": 1.0},
    # No crops: a crop can cut off the marked digit or the cue, and the label is where they lie.
    "cued-digits": {"img_size": 48, "hflip": 0.0, "crop_scale": (1.0, 1.0), "crop_pct": 1.0},
}


def data_defaults(data: str | None) -> dict:
    """The recipe values of a built-in data set (:data:`DATA_DEFAULTS`); none for an image folder."""
    return dict(DATA_DEFAULTS.get(data or "digits", {}))


def field_help(cls: type = TrainConfig) -> dict[str, tuple[object, str, tuple | None]]:
    """``name -> (type hint, help, choices or None)`` for every option of a config dataclass made of
    :func:`option` fields (the CLI is generated from this)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.metadata["help"], f.metadata.get("choices")) for f in dataclasses.fields(cls)}

"""``mixnet train``: the command-line face of :func:`mixnet.train.train`.

Every option is generated from :class:`mixnet.train.TrainConfig` (its fields' help texts), so the command
line and the library cannot drift. Options left out take the preset's value (``--preset``), except that the
built-in data sets bring their own image size, flip and crop (:data:`mixnet.train.config.DATA_DEFAULTS`);
with ``--resume`` they take the checkpoint's saved configuration, so a resume needs no other option (an option
given explicitly, e.g. a larger ``--epochs``, overrides it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from mixnet.cli import options
from mixnet.train.config import DATA_DEFAULTS, PRESETS, RENAMED, TrainConfig, data_defaults

DEFAULT_PRESET = "short"
_NOT_OPTIONS = {"preset"}  # set by --preset, not an option of its own


def _preset_defaults(name: str) -> str:
    a, b = getattr(_PAPER, name), getattr(_SHORT, name)
    if a == b:
        return f"default: {options.show_value(a)}"
    return f"default: short preset {options.show_value(b)}, paper preset {options.show_value(a)}"


_PAPER, _SHORT = TrainConfig.from_preset("paper"), TrainConfig.from_preset("short")


def _builtin_defaults() -> str:
    return "; ".join(
        f"on {name}: " + ", ".join(f"--{k.replace('_', '-')} {options.show_value(v)}" for k, v in values.items())
        for name, values in DATA_DEFAULTS.items()
    )


def add_config_options(p: argparse.ArgumentParser) -> None:
    """Adds one option per TrainConfig field; each help ends with the defaults of both presets."""
    options.add_config_options(p, TrainConfig, default_text=_preset_defaults, skip=tuple(_NOT_OPTIONS))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved configuration: preset (or the resumed checkpoint's) values, then explicit options."""
    explicit = options.explicit_options(args, TrainConfig, skip=tuple(_NOT_OPTIONS))
    preset = getattr(args, "preset", None)
    if explicit.get("resume") and preset is None:
        from mixnet.train.checkpoint import load_checkpoint

        # Memory-mapped: only the saved options are read here; train() loads the tensors.
        saved = {RENAMED.get(k, k): v for k, v in load_checkpoint(explicit["resume"], mmap=True)["args"].items()}
        saved.pop("out", None)  # a resumed run continues in the checkpoint's folder unless told otherwise
        saved.pop("progress", None)  # bars or not depends on where this run's output goes
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig.from_dict({k: v for k, v in saved.items() if k in names} | explicit)
    # The built-in digits bring their own size, flip and crop unless the command line sets them.
    return TrainConfig.from_preset(preset or DEFAULT_PRESET, **(data_defaults(explicit.get("data")) | explicit))


def run(args: argparse.Namespace) -> int:
    """Trains (or, with --dry-run, prints the resolved configuration)."""
    from mixnet.train.loop import train

    config = config_from_args(args)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    result = train(config)
    if result.history:  # rank 0 (the others have no history to show)
        final = result.final
        acc = final.get("ema_val_top1", final.get("val_top1"))
        print(f"run folder: {result.run_dir}")
        print(f"weights: {result.weights} | checkpoint: {result.checkpoint}")
        if acc is not None:
            print(f"final held-out top-1: {acc:.2f}% ({'EMA' if 'ema_val_top1' in final else 'model'} weights)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet train``."""
    p = sub.add_parser(
        "train",
        help="train a MixNet (one process, or many under torchrun)",
        description=(
            "Train a MixNet on an ImageFolder (train/ and val/ class folders) or the built-in digits. "
            "Runs alone or under `torchrun --nproc_per_node=N` (DistributedDataParallel). "
            f"Options left out take the --preset's value ({_builtin_defaults()}); with --resume, the checkpoint's."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=argparse.SUPPRESS,
        help=f"recipe for options left out: 'paper' (the MixNet/MnasNet ImageNet recipe) or 'short' (short "
        f"schedules on small data) (default: {DEFAULT_PRESET}; with --resume: the checkpoint's configuration)",
    )
    add_config_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration as JSON and exit")
    p.set_defaults(func=run)

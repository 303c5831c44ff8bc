"""``mixnet train``: the command-line face of :func:`mixnet.train.train`.

Every option is generated from :class:`mixnet.train.TrainConfig` (its fields' help texts), so the command
line and the library cannot drift. Options left out take the preset's value (``--preset``); with
``--resume`` they take the checkpoint's saved configuration, so a resume needs no other option (an option
given explicitly, e.g. a larger ``--epochs``, overrides it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing

from mixnet.train.config import PRESETS, RENAMED, TrainConfig, field_help

DEFAULT_PRESET = "short"
_NOT_OPTIONS = {"preset"}  # set by --preset, not an option of its own


def _none_or(cast: type) -> typing.Callable[[str], object]:
    def parse(text: str) -> object:
        return None if text.lower() == "none" else cast(text)

    parse.__name__ = cast.__name__  # argparse names the type in its error messages
    return parse


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value)
    return "none" if value is None else str(value)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """Adds one option per TrainConfig field; each help ends with the defaults of both presets."""
    paper, short = TrainConfig.from_preset("paper"), TrainConfig.from_preset("short")
    for name, (hint, text, choices) in field_help().items():
        if name in _NOT_OPTIONS:
            continue
        flag = "--" + name.replace("_", "-")
        a, b = getattr(paper, name), getattr(short, name)
        default = f"default: {_show(a)}" if a == b else f"default: short preset {_show(b)}, paper preset {_show(a)}"
        kw: dict = {"default": argparse.SUPPRESS, "help": f"{text} ({default})"}
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((t for t in args if t is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kw.update(nargs=len(typing.get_args(base)), type=typing.get_args(base)[0], metavar=("MIN", "MAX"))
        else:
            kw["type"] = _none_or(base) if optional else base
            if choices:
                kw["choices"] = choices
            else:
                kw["metavar"] = name.upper()
        p.add_argument(flag, **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The resolved configuration: preset (or the resumed checkpoint's) values, then explicit options."""
    explicit = {k: v for k, v in vars(args).items() if k in field_help() and k not in _NOT_OPTIONS}
    if "crop_scale" in explicit:
        explicit["crop_scale"] = tuple(explicit["crop_scale"])
    preset = getattr(args, "preset", None)
    if explicit.get("resume") and preset is None:
        from mixnet.train.checkpoint import load_checkpoint

        # Memory-mapped: only the saved options are read here; train() loads the tensors.
        saved = {RENAMED.get(k, k): v for k, v in load_checkpoint(explicit["resume"], mmap=True)["args"].items()}
        saved.pop("out", None)  # a resumed run continues in the checkpoint's folder unless told otherwise
        saved.pop("progress", None)  # bars or not depends on where this run's output goes
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        return TrainConfig.from_dict({k: v for k, v in saved.items() if k in names} | explicit)
    return TrainConfig.from_preset(preset or DEFAULT_PRESET, **explicit)


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
            "Options left out take the --preset's value; with --resume, the checkpoint's."
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

"""Options that mean the same thing in every subcommand, defined once.

The vocabulary (:data:`VOCABULARY`: each option's meaning) is shared by every subcommand that takes the
option; ``tests/test_cli.py`` checks every parser against it and lists which subcommand takes which.
``mixnet train`` and ``mixnet search`` generate their options from their config dataclasses
(:class:`mixnet.train.config.TrainConfig`, :class:`mixnet.search.config.SearchConfig`), whose fields use the
same names. Where a command also times a network (``search``, ``latency-table``), the timing's batch and
threads are ``--latency-batch-size`` and ``--latency-threads``, so ``--batch-size`` and ``--threads`` keep
their one meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
import warnings
from collections.abc import Callable, Iterator

from torch import nn

from mixnet.io.spec import ModelSpec
from mixnet.models.preprocess import INTERPOLATIONS, Preprocess
from mixnet.runtime import AMP_MODES

HUB = "hub"

# The shared options: spelling -> meaning. A switch is an option without a value (``--json``, ``--progress``).
VOCABULARY: dict[str, str] = {
    "--model": "a registered model name (or an architecture file)",
    "--weights": "a model file, or 'hub' for timm's ImageNet weights",
    "--data": "an ImageFolder root or a built-in set (digits, cluttered-digits)",
    "--img-size": "the input side in pixels",
    "--crop-pct": "the eval center-crop fraction",
    "--interpolation": "the resize filter",
    "--mean": "the normalisation mean (RGB)",
    "--std": "the normalisation std (RGB)",
    "--batch-size": "images per step: a training step, or a forward pass where nothing trains",
    "--workers": "data loader worker processes",
    "--device": "cpu, cuda, cuda:N or auto",
    "--amp": "the autocast dtype: auto, none, bf16, fp16",
    "--channels-last": "the channels_last memory format (switch)",
    "--threads": "CPU threads for torch (and ONNX Runtime) ops",
    "--out": "where the results go (a folder, or a file)",
    "--json": "print JSON instead of text (switch)",
    "--strict-data": "an unreadable image is an error instead of being skipped (switch)",
    "--progress": "progress bars; off: plain lines (switch)",
}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_ints(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 1."""
    values = [positive_int(t) for t in text.split(",") if t]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated positive integers")
    return values


def names(text: str) -> list[str]:
    """argparse type: comma-separated names."""
    values = [t for t in text.split(",") if t]
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return values


def _none_or(cast: type) -> Callable[[str], object]:
    def parse(text: str) -> object:
        return None if text.lower() == "none" else cast(text)

    parse.__name__ = cast.__name__  # argparse names the type in its error messages
    return parse


def show_value(value: object) -> str:
    """A default as the command line spells it (``none``, space-separated lists)."""
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value)
    return "none" if value is None else str(value)


def add_config_options(
    p: argparse.ArgumentParser,
    cls: type,
    *,
    default_text: Callable[[str], str] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Adds one option per field of the config dataclass ``cls`` (fields made with
    :func:`mixnet.train.config.option`): ``--name-with-dashes``, typed from the field's hint.

    Options left out are absent from the parsed namespace (``argparse.SUPPRESS``), so the caller can tell
    an explicit value from a default; each help ends with the default once.

    Args:
        p: the parser.
        cls: the dataclass.
        default_text: field name -> the help's default part; by default ``default: <the field's default>``.
        skip: fields that are not options.
    """
    from mixnet.train.config import field_help

    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for name, (hint, text, choices) in field_help(cls).items():
        if name in skip:
            continue
        default = default_text(name) if default_text else f"default: {show_value(defaults[name])}"
        kw: dict = {"default": argparse.SUPPRESS, "help": f"{text} ({default})"}
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((t for t in args if t is not type(None)), hint) if isinstance(hint, types.UnionType) else hint
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            item = typing.get_args(base)
            if len(item) == 2 and item[1] is Ellipsis:
                kw.update(nargs="+", type=item[0], metavar=name.upper())
            else:
                kw.update(nargs=len(item), type=item[0], metavar=("MIN", "MAX"))
        else:
            kw["type"] = _none_or(base) if optional else base
            if choices:
                kw["choices"] = choices
            else:
                kw["metavar"] = name.upper()
        p.add_argument("--" + name.replace("_", "-"), **kw)


def explicit_options(args: argparse.Namespace, cls: type, skip: tuple[str, ...] = ()) -> dict:
    """The options of ``cls`` given on the command line (lists as tuples where the field is a tuple)."""
    from mixnet.train.config import field_help

    fields = field_help(cls)
    out = {k: v for k, v in vars(args).items() if k in fields and k not in skip}
    for k, v in out.items():
        if isinstance(v, list) and typing.get_origin(fields[k][0]) is tuple:
            out[k] = tuple(v)
    return out


def add_model(p: argparse.ArgumentParser, *, weights_help: str = "") -> None:
    """``--model`` and ``--weights``."""
    p.add_argument("--model", default=None, help="registered model name; when omitted, the one the weights record")
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH|hub",
        help="a model file (a mixnet .safetensors or .pth checkpoint, or a timm weights file), or 'hub' for "
        "timm's ImageNet weights from the Hugging Face hub" + (weights_help or "; none: random initialisation"),
    )


def add_preprocess(p: argparse.ArgumentParser) -> None:
    """``--img-size``, ``--crop-pct``, ``--interpolation``, ``--mean``, ``--std`` (default: the model's own)."""
    d = Preprocess()
    p.add_argument(
        "--img-size", type=positive_int, default=None, help=f"input side; default: the model's (else {d.img_size})"
    )
    p.add_argument(
        "--crop-pct",
        type=float,
        default=None,
        help=f"center-crop fraction (resize to img-size/crop-pct first); default: the model's (else {d.crop_pct})",
    )
    p.add_argument(
        "--interpolation",
        choices=INTERPOLATIONS,
        default=None,
        help=f"resize filter; default: the model's (else {d.interpolation})",
    )
    p.add_argument("--mean", type=float, nargs=3, default=None, help="normalisation mean (RGB); default: the model's")
    p.add_argument("--std", type=float, nargs=3, default=None, help="normalisation std (RGB); default: the model's")


def add_runtime(p: argparse.ArgumentParser, *, batch_size: int = 64, workers: int | None = None) -> None:
    """``--batch-size``, ``--device``, ``--amp``, ``--channels-last`` (and ``--workers`` when given a default)."""
    add_batch_size(p, batch_size)
    if workers is not None:
        add_workers(p, workers)
    add_device(p)
    p.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="autocast dtype: auto (bf16 on a CUDA GPU that has it, else full precision), none, bf16, fp16",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels_last (NHWC) memory format (faster depthwise convs on CPU and GPU)",
    )


def add_batch_size(p: argparse.ArgumentParser, default: int | None, text: str = "images per forward pass") -> None:
    """``--batch-size``."""
    p.add_argument("--batch-size", type=positive_int, default=default, help=text)


def add_workers(p: argparse.ArgumentParser, default: int | None) -> None:
    """``--workers``."""
    p.add_argument("--workers", type=non_negative_int, default=default, help="data loader worker processes")


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``."""
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... or auto (CUDA if available)")


def add_data(p: argparse.ArgumentParser, text: str) -> None:
    """``--data``."""
    p.add_argument("--data", default=None, help=text)


def add_out(p: argparse.ArgumentParser, default: str | None, text: str) -> None:
    """``--out``."""
    p.add_argument("--out", default=default, help=text)


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json``."""
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_strict_data(p: argparse.ArgumentParser) -> None:
    """``--strict-data``."""
    p.add_argument(
        "--strict-data", action="store_true", help="an unreadable image file is an error instead of being skipped"
    )


def add_threads(p: argparse.ArgumentParser, default: int | None) -> None:
    """``--threads`` (None: the libraries' own default)."""
    p.add_argument(
        "--threads",
        type=positive_int,
        default=default,
        help="CPU threads for torch (and ONNX Runtime) ops" + ("" if default else "; default: the library's own"),
    )


def add_progress(p: argparse.ArgumentParser, *, lines: str | None = None) -> None:
    """``--progress/--no-progress`` (default: bars only when stderr is a terminal).

    Args:
        p: the parser.
        lines: what a command prints a line for instead of a bar (``epoch`` when training), if anything.
    """
    instead = f"; otherwise a line per {lines}" if lines else ""
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"progress bars (default: only when stderr is a terminal{instead})",
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` to an option's help only where the help does not state its default already
    and there is one to state (not for ``None``, flags that are off, or options taken from elsewhere)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or nothing or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter` keeping the description's line breaks."""


def walk_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every (sub)subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                yield from walk_parsers(child)


def option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every ``--option`` spelling a parser accepts."""
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def load_model_from_args(args: argparse.Namespace, *, quiet_random: bool = False) -> tuple[nn.Module, ModelSpec]:
    """The model and its spec from ``--model`` / ``--weights``, in eval mode.

    Args:
        args: parsed options with ``model`` and ``weights``.
        quiet_random: random weights are expected (a speed export), so do not warn about them.

    Raises:
        ValueError: no model name where one is needed.
        CheckpointError, HubError, MissingExtraError: weights that cannot be read or fetched.
    """
    from mixnet.factory import create_model
    from mixnet.io.load import load_model

    if args.weights not in (None, HUB):
        return load_model(args.weights, architecture=args.model)
    if not args.model:
        raise ValueError("no model name: pass --model (or --weights with a mixnet model file)")
    model = create_model(args.model, pretrained=args.weights == HUB).eval()
    if args.weights is None and not quiet_random:
        warnings.warn(f"no --weights given: {args.model} is randomly initialised", stacklevel=2)
    return model, ModelSpec.from_model(model)


def preprocess_from_args(args: argparse.Namespace, spec: ModelSpec) -> Preprocess:
    """The model's preprocessing with any of ``--img-size``/``--crop-pct``/... given on the command line on top.

    Raises:
        ValueError: a bad value (named).
    """
    return spec.preprocess.replace(
        img_size=args.img_size,
        crop_pct=args.crop_pct,
        interpolation=args.interpolation,
        mean=tuple(args.mean) if args.mean else None,
        std=tuple(args.std) if args.std else None,
    )

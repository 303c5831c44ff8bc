"""The ``mixnet`` command: one subcommand per job, each a thin layer over a library function.

Each subcommand lives in its own module with ``add_parser(subparsers)``; the parser sets ``func``. Options
shared by several subcommands are defined once, in :mod:`mixnet.cli.options`. An error the user can act
on (a bad value or file, a missing extra, a full disk, a missing permission) is printed as one line with
exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import importlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from mixnet.cli import options

# Subcommand modules, in the order ``mixnet --help`` lists them.
COMMANDS = ["info", "train", "demo", "study", "search", "eval", "predict", "bench", "export", "quantize"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mixnet",
        description="MixConv and MixNet (Tan & Le, 2019): models, training, evaluation, export, benchmarks.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mixnet.cli.{name}").add_parser(sub)
    for p in options.walk_parsers(parser):
        # One spelling per option (no abbreviations), each default shown once, and the parser that
        # took the command line known to main() (to name its own usage on an unknown option).
        p.allow_abbrev = False
        raw = issubclass(p.formatter_class, argparse.RawDescriptionHelpFormatter)
        p.formatter_class = options.RawHelpFormatter if raw else options.HelpFormatter
        p.set_defaults(_parser=p)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parses the command line; an unknown option is reported by the subcommand it was given to, with the
    closest option that subcommand has (``--img_size``: did you mean ``--img-size``?)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = getattr(args, "_parser", parser)
        unknown = [a for a in extra if a.startswith("-")]
        guesses = [difflib.get_close_matches(a.split("=")[0], options.option_strings(owner), n=1) for a in unknown]
        hint = "; ".join(f"{a.split('=')[0]}: did you mean {g[0]}?" for a, g in zip(unknown, guesses, strict=True) if g)
        owner.error(f"unrecognized arguments: {' '.join(extra)}" + (f" ({hint})" if hint else ""))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixnet`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    args.argv = argv  # the command line as given, for reports that say how to reproduce them
    try:
        with plain_warnings():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top not in EXTRA_OF:
            raise
        extra = EXTRA_OF[top]
        print(
            f"mixnet {args.command}: error: needs {top}, which is not installed: pip install 'mixnet[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except Exception as e:
        if not is_user_error(e):
            raise
        message = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"mixnet {args.command}: error: {message}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Shows warnings as ``warning: ...`` lines on stderr (above any progress bar), without source lines.

    Nothing is silenced: every warning is shown, only its format changes.
    """

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = f"warning: {message}"
        if "tqdm" in sys.modules:  # keeps an active bar intact
            sys.modules["tqdm"].tqdm.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


# Optional dependencies and the pip extra that installs each.
EXTRA_OF = {
    **dict.fromkeys(
        ["torchvision", "PIL", "tqdm", "matplotlib", "sklearn", "scipy", "mlxtend", "yaml", "tomli"], "train"
    ),
    **dict.fromkeys(["onnx", "onnxruntime", "onnxscript", "openvino"], "export"),
    "timm": "bench",
    "huggingface_hub": "hub",
}
# OS errors the user can do something about, as opposed to bugs.
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.EISDIR}


def is_user_error(e: BaseException) -> bool:
    """Whether ``e`` is a problem of the input or the machine that the user can fix (printed as one line).

    A ``ValueError`` counts only when mixnet's own code raised it (its validation of options, files and
    data); one raised inside Python, torch or numpy is a bug and keeps its traceback. ``MIXNET_DEBUG=1``
    keeps every traceback.
    """
    from mixnet.errors import MixnetError

    if os.environ.get("MIXNET_DEBUG"):
        return False
    if isinstance(e, MixnetError):
        return True
    if isinstance(e, ValueError):
        return _raised_by_mixnet(e)
    return isinstance(e, OSError) and (e.errno in _USER_ERRNOS or isinstance(e, FileNotFoundError | PermissionError))


def _raised_by_mixnet(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep)


if __name__ == "__main__":
    sys.exit(main())

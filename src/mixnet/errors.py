"""Errors the user can act on. The command line prints these as one line and exits with status 2.

Validation errors are ``ValueError`` (and its subclasses, e.g. :class:`mixnet.io.files.CheckpointError`);
the classes here cover what is not a bad value: a missing optional dependency, an unreachable hub.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MixnetError(Exception):
    """Base of the errors the user can act on that are not bad values."""


class MissingExtraError(MixnetError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that brings it."""


class HubError(MixnetError, RuntimeError):
    """Weights could not be fetched from the Hugging Face hub; the message says how to go on offline."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports ``module``, or raises :class:`MissingExtraError` naming ``pip install 'mixnet[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: pip install 'mixnet[{extra}]'"
        ) from e

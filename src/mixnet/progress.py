"""Progress bars for terminals only: when output goes to a file or a pipe, long jobs print a line per epoch.

A bar redrawn into a log file turns a few lines of results into megabytes of carriage returns, so the
default (``None``) shows bars only when stderr is a terminal.
"""

from __future__ import annotations

import sys


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw progress bars: ``progress`` when given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)

"""The one way this package sets torch's thread count: for a block of code, restored afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Runs the block with ``n`` torch intra-op threads and restores the previous count on exit.

    A count left changed would silently slow (or speed) whatever the process runs next, a training run
    after a benchmark for instance. ``None`` leaves the count as it is.
    """
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

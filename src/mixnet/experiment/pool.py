"""Several training runs at once on one machine: worker processes that each take the next run when free.

A static split (run i to worker i mod N) leaves one worker idle while another finishes a dearer share; here
the runs are handed out dearest first to whichever worker is free (the longest-processing-time rule), so the
workers finish within about one cheap run of each other. Workers are fresh interpreters (spawned, not forked:
no copy of this process's torch threads) and are not daemons, so a run may start data-loader workers or
torchrun. Only the calling process sees the results, so only it writes them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def cost_order(items: Sequence[T], cost: Callable[[T], float]) -> list[T]:
    """``items`` dearest first; equal costs keep their order."""
    return sorted(items, key=cost, reverse=True)


def _take_devices(groups) -> None:
    """Worker initializer: take one group of GPUs (before anything starts CUDA) and keep it."""
    os.environ["CUDA_VISIBLE_DEVICES"] = groups.get()


def run_parallel(
    fn: Callable[[T], R],
    items: Sequence[T],
    jobs: int,
    *,
    cost: Callable[[T], float] | None = None,
    device_groups: Sequence[str] | None = None,
) -> Iterator[tuple[T, R]]:
    """Calls ``fn(item)`` for every item in ``jobs`` worker processes, yielding ``(item, result)`` as each ends.

    Args:
        fn: a module-level function (or a ``functools.partial`` of one): it is sent to the workers by pickle.
        items: the work; each must pickle.
        jobs: worker processes (>= 1).
        cost: expected cost of an item; items start dearest first. Without it, in the given order.
        device_groups: one ``CUDA_VISIBLE_DEVICES`` value per worker (e.g. ``["0", "1"]``); none: inherited.

    Raises:
        ValueError: ``jobs`` < 1, or a number of device groups other than ``jobs``.
        concurrent.futures.process.BrokenProcessPool: a worker died (killed, out of memory); results already
            yielded stand.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if device_groups is not None and len(device_groups) != jobs:
        raise ValueError(f"{len(device_groups)} device groups for {jobs} jobs")
    order = cost_order(items, cost) if cost is not None else list(items)
    ctx = multiprocessing.get_context("spawn")
    init, initargs = None, ()
    if device_groups is not None:
        groups = ctx.Queue()
        for g in device_groups:
            groups.put(g)
        init, initargs = _take_devices, (groups,)
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=init, initargs=initargs) as pool:
        # The pool hands pending calls to free workers in submission order: dearest first.
        pending = {pool.submit(fn, item): item for item in order}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in [f for f in pending if f in done]:  # those that ended together: in start order
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:  # a failure or an interrupt: start nothing more
                future.cancel()

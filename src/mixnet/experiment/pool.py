"""Several training runs at once on one machine: worker processes that each take the next run when free.

A static split (run i to worker i mod N) leaves one worker idle while another finishes a dearer share; here
the runs are handed out in the caller's order of priority (dearest first: the longest-processing-time rule)
to whichever worker is free, so the workers finish within about one cheap run of each other. Workers are
fresh interpreters (spawned, not forked: no copy of this process's torch threads) and are not daemons, so a
run may start data-loader workers or torchrun. Only the calling process sees the results, so only it writes
them. A script that calls this (directly or through ``jobs`` > 1) needs the usual
``if __name__ == "__main__":`` guard of spawned multiprocessing.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = None  # the worker's copy of the pool's stop flag (set by the initializer)


def _start_worker(stop, groups) -> None:
    """Worker initializer: keep the stop flag; take one group of GPUs (before anything starts CUDA)."""
    global _STOP
    _STOP = stop
    if groups is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = groups.get()


def _call(fn: Callable, item):
    """``fn(item)``, unless the pool was stopped: a call the pool had already queued then does nothing."""
    if _STOP is not None and _STOP.is_set():
        return None
    try:
        return fn(item)
    except BaseException:
        if _STOP is not None:  # before the parent hears of it: a call already queued to this worker stays idle
            _STOP.set()
        raise


def gpu_groups(jobs: int, per_job: int, device: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` for each of ``jobs`` workers of ``per_job`` GPUs, out of those this process sees.

    None when the device is not CUDA's default (``cpu``, or a pinned ``cuda:1``) or there are no GPUs: the
    workers use what they inherit. With fewer GPUs than ``jobs x per_job`` the workers would share them; that
    is allowed, with a warning.
    """
    if device not in (None, "auto", "cuda"):
        return None
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d for d in visible.split(",") if d] if visible is not None else []
    if visible is None:
        devices = [str(i) for i in range(torch.cuda.device_count())]
    if not devices:
        return None
    if len(devices) < jobs * per_job:
        warnings.warn(
            f"{jobs} jobs x {per_job} process(es) need {jobs * per_job} GPUs, {len(devices)} visible: "
            "the workers share them",
            stacklevel=2,
        )
        return None
    return [",".join(devices[k * per_job : (k + 1) * per_job]) for k in range(jobs)]


def run_parallel(
    fn: Callable[[T], R],
    items: Sequence[T],
    jobs: int,
    *,
    priority: Callable[[T], object] | None = None,
    device_groups: Sequence[str] | None = None,
) -> Iterator[tuple[T, R]]:
    """Calls ``fn(item)`` for every item in ``jobs`` worker processes, yielding ``(item, result)`` as each ends.

    Args:
        fn: a module-level function (or a ``functools.partial`` of one): it is sent to the workers by pickle.
        items: the work; each must pickle.
        jobs: worker processes (>= 1).
        priority: a sort key; items start in descending order of it (e.g. their expected cost: dearest
            first). Without it, in the given order.
        device_groups: one ``CUDA_VISIBLE_DEVICES`` value per worker (see :func:`gpu_groups`); none: inherited.

    Raises:
        ValueError: ``jobs`` < 1, or a number of device groups other than ``jobs``.
        Exception: the first exception a call raised, once every call that ended with it has been yielded; no
            further call starts (nor does any after the caller stops iterating, e.g. on Ctrl-C).
        concurrent.futures.process.BrokenProcessPool: a worker died (killed, out of memory).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if device_groups is not None and len(device_groups) != jobs:
        raise ValueError(f"{len(device_groups)} device groups for {jobs} jobs")
    return _run(fn, list(items), jobs, priority, device_groups)


def _run(fn, items, jobs, priority, device_groups):
    order = sorted(items, key=priority, reverse=True) if priority is not None else items
    ctx = multiprocessing.get_context("spawn")
    stop, groups = ctx.Event(), None
    if device_groups is not None:
        groups = ctx.Queue()
        for g in device_groups:
            groups.put(g)
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker, initargs=(stop, groups))
    try:
        # The pool hands pending calls to free workers in submission order: the priority order.
        pending = {pool.submit(_call, fn, item): item for item in order}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            failed = None
            for future in [f for f in pending if f in done]:  # those that ended together: in start order
                item = pending.pop(future)
                if future.exception() is not None:
                    failed = failed or future.exception()
                    continue
                yield item, future.result()
            if failed is not None:
                raise failed
    finally:
        stop.set()  # calls already handed to the pool's queue return at once
        pool.shutdown(wait=True, cancel_futures=True)

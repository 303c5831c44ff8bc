"""Interleaved timing of several contenders, as measuring speed on a shared machine demands.

Shared machines move absolute times by tens of percent; a ratio measured with the contenders
interleaved (each round runs every contender once, medians over rounds) holds. :func:`net_latencies_ms`
is the one setting for timing whole networks against each other (the study's and the search's latency),
so their milliseconds are comparable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_medians(
    contenders: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 15,
    iters: int = 3,
    warmup: int = 3,
    pause_s: float = 0.0,
    settle: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Median seconds per call of each contender, measured in interleaved rounds.

    Args:
        contenders: name -> a zero-argument callable doing one unit of work (e.g. one forward pass).
        rounds: rounds; in each, every contender runs ``iters`` times back to back.
        iters: calls per contender per round (their mean is the round's time).
        warmup: untimed calls of each contender before the first round.
        pause_s: sleep between contenders, so a thread pool that is still spinning from one does not
            slow the next.
        settle: untimed calls of each contender right before its timed ones in every round, so each is
            timed with its weights in cache, as a model that runs repeatedly is (with many contenders
            interleaved, the first call of a round otherwise pays for the others' evictions).
        progress: show a tqdm bar over rounds.

    Raises:
        ValueError: no contenders, or rounds/iters below 1.
    """
    if not contenders or rounds < 1 or iters < 1:
        raise ValueError("need at least one contender, rounds >= 1 and iters >= 1")
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    if progress:
        from tqdm import tqdm  # the [train] extra, only for the bar

        order = tqdm(range(rounds), desc="timing", leave=False)
    else:
        order = range(rounds)
    for r in order:
        # Rotate the order each round, so no contender always runs right after the same neighbour.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = contenders[name]
            if pause_s:
                time.sleep(pause_s)
            for _ in range(settle):
                fn()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            samples[name].append((time.perf_counter() - t0) / iters)
    return {name: statistics.median(s) for name, s in samples.items()}


# Whole nets are bigger than blocks: three untimed calls per round before five timed ones keep each net
# warm however many share the cache (with one, 20 ONNX Runtime nets interleaved timed 13% slower than warm).
NET_WARMUP, NET_SETTLE, NET_ITERS = 2, 3, 5


def net_latencies_ms(
    contenders: Mapping[str, Callable[[], object]], *, rounds: int = 9, progress: bool = False
) -> dict[str, float]:
    """Median milliseconds per forward pass of whole networks, interleaved with the one shared setting.

    Args:
        contenders: name -> a zero-argument callable running one forward pass of one network.
        rounds: interleaved rounds (medians over them).
        progress: show a tqdm bar over rounds.
    """
    medians = interleaved_medians(
        contenders, rounds=rounds, iters=NET_ITERS, warmup=NET_WARMUP, settle=NET_SETTLE, progress=progress
    )
    return {name: s * 1e3 for name, s in medians.items()}

"""Runs several at a time: worker processes, in priority order, results back to the caller only."""

import functools
import os
from pathlib import Path

import pytest

from mixnet.experiment.pool import run_parallel


def _whoami(item: int) -> tuple[int, int, str | None]:
    return item, os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def _touch_then_fail_on_two(folder: str, item: int) -> int:
    (Path(folder) / str(item)).touch()
    if item == 2:
        raise RuntimeError("item two broke")
    return item


def _loads_with_a_worker(n: int) -> int:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(torch.arange(n), batch_size=2, num_workers=1)  # a child of the pool's worker
    return int(sum(batch.sum() for batch in loader))


@pytest.mark.slow
def test_items_start_in_priority_order_in_worker_processes():
    costs = {0: 1.0, 1: 5.0, 2: 3.0, 3: 5.0, 4: 0.5}
    done = list(run_parallel(_whoami, list(costs), 1, priority=costs.get))
    assert [item for item, _ in done] == [1, 3, 2, 0, 4]  # one worker: dearest first, equal costs in order
    assert all(result[0] == item and result[1] != os.getpid() for item, result in done)


@pytest.mark.slow
def test_every_item_runs_once_and_each_worker_keeps_its_devices():
    done = list(run_parallel(_whoami, list(range(8)), 2, device_groups=["7", "8,9"]))
    assert sorted(item for item, _ in done) == list(range(8))
    pids = {}
    for _, (_, pid, devices) in done:
        assert devices in ("7", "8,9")
        assert pids.setdefault(pid, devices) == devices  # a worker's GPUs are its own for every run
    assert len(pids) <= 2 and len(set(pids.values())) == len(pids)


@pytest.mark.slow
def test_a_run_may_start_processes_of_its_own():
    assert sorted(run_parallel(_loads_with_a_worker, [4, 6], 2)) == [(4, 6), (6, 15)]


@pytest.mark.slow
def test_a_failing_call_raises_in_the_caller_and_nothing_more_starts(tmp_path):
    fn = functools.partial(_touch_then_fail_on_two, str(tmp_path))
    seen = []
    with pytest.raises(RuntimeError, match="item two broke"):
        for item, _ in run_parallel(fn, list(range(6)), 1):
            seen.append(item)
    assert seen == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]  # the queued calls did nothing


@pytest.mark.parametrize(
    ("jobs", "groups", "message"), [(0, None, "jobs must be >= 1"), (2, ["0"], "1 device groups for 2 jobs")]
)
def test_bad_pool_options_are_named_before_anything_starts(jobs, groups, message):
    with pytest.raises(ValueError, match=message):
        run_parallel(_whoami, [0], jobs, device_groups=groups)

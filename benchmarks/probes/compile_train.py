"""Probe: does torch.compile speed up a CPU training step of mixnet_s? Interleaved vs timm and ours eager,
all channels_last, 2 threads, medians of 5 rounds (images/s). Output committed as docs/bench/compile_train.txt.

    .venv/bin/python benchmarks/probes/compile_train.py > docs/bench/compile_train.txt
"""

import time

import torch

from mixnet import create_model
from mixnet.measure.runners import sgd_step_runner
from mixnet.measure.threads import threads
from mixnet.measure.timing import interleaved_medians


def main() -> None:
    """Prints the compile time and the images/s of each contender per (batch, size)."""
    import timm

    cl = torch.channels_last
    for batch, size in ((128, 64), (32, 224)):
        torch.manual_seed(0)
        x = torch.randn(batch, 3, size, size).contiguous(memory_format=cl)
        y = torch.randint(0, 1000, (batch,))
        t = time.time()
        s_comp = sgd_step_runner(torch.compile(create_model("mixnet_s").train().to(memory_format=cl)), x, y)
        s_comp()
        s_comp()
        print(batch, size, "compile s", round(time.time() - t, 1), flush=True)
        steps = {
            "timm cl": sgd_step_runner(timm.create_model("mixnet_s").train().to(memory_format=cl), x, y),
            "ours cl": sgd_step_runner(create_model("mixnet_s").train().to(memory_format=cl), x, y),
            "ours compiled cl": s_comp,
        }
        med = interleaved_medians(steps, rounds=5, iters=1, warmup=1)
        print(batch, size, {k: round(batch / v, 1) for k, v in med.items()}, flush=True)


if __name__ == "__main__":
    with threads(2):
        main()

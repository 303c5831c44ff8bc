"""Probe: does torch.compile speed up a CPU training step of mixnet_s? Interleaved vs timm and ours eager,
all channels_last, 2 threads, medians of 5 rounds (images/s). Output committed as docs/bench/compile_train.txt.

    .venv/bin/python benchmarks/compile_train.py > docs/bench/compile_train.txt
"""

import time

import timm
import torch
from torch import nn

from mixnet import create_model
from mixnet.timing import interleaved_medians

torch.set_num_threads(2)
cl = torch.channels_last
for batch, size in ((128, 64), (32, 224)):
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=cl)
    y = torch.randint(0, 1000, (batch,))

    def step_fn(model, x=x, y=y):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        lf = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            lf(model(x), y).backward()
            opt.step()

        return step

    t = time.time()
    comp = torch.compile(create_model("mixnet_s").train().to(memory_format=cl))
    s_comp = step_fn(comp)
    s_comp()
    s_comp()
    print(batch, size, "compile s", round(time.time() - t, 1), flush=True)
    steps = {
        "timm cl": step_fn(timm.create_model("mixnet_s").train().to(memory_format=cl)),
        "ours cl": step_fn(create_model("mixnet_s").train().to(memory_format=cl)),
        "ours compiled cl": s_comp,
    }
    med = interleaved_medians(steps, rounds=5, iters=1, warmup=1)
    print(batch, size, {k: round(batch / v, 1) for k, v in med.items()}, flush=True)

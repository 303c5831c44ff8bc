"""Shared fixtures and helpers; every test runs on the CPU with random weights and no network.

Helpers are imported by the test modules (``from conftest import randomize_bn, tiny_config``).
"""

import os

import pytest
import torch
from torch import nn

import mixnet

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread per pytest-xdist worker (the workers share the cores; two threads each would spin against
# each other), else up to two.
torch.set_num_threads(1 if "PYTEST_XDIST_WORKER" in os.environ else min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def randomize_bn(
    model: nn.Module, *, seed: int = 0, spread: float = 0.2, var_range: tuple[float, float] = (0.5, 2.0)
) -> nn.Module:
    """Random BN running statistics and affine parameters that keep activations at the init's scale.

    A BN mapped to the wrong place, folded wrongly or given the wrong eps then changes the outputs:
    running_mean in +-spread, running_var in ``var_range``, weight = sqrt(var) * (1 +- spread) (so the
    output scale stays about 1 whatever the variance; a small ``var_range`` makes the eps matter), bias
    in +-spread.
    """
    g = torch.Generator().manual_seed(seed)
    lo, hi = var_range

    def uniform(n: int, a: float, b: float) -> torch.Tensor:
        return a + (b - a) * torch.rand(n, generator=g, dtype=torch.float64)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                var = uniform(n, lo, hi)
                m.running_mean.copy_(uniform(n, -spread, spread))
                m.running_var.copy_(var)
                m.weight.copy_(var.sqrt() * uniform(n, 1 - spread, 1 + spread))
                m.bias.copy_(uniform(n, -spread, spread))
    return model


def write_digit_folder(root, classes: int, per_class: tuple[int, int]):
    """An ImageFolder of real digits (the built-in set) under ``root``: ``per_class`` = (train, val) images."""
    import numpy as np
    from PIL import Image

    from mixnet.data import load_digits_arrays

    images, labels = load_digits_arrays()
    for c in range(classes):
        idx = np.flatnonzero(labels == c)
        for split, (lo, hi) in (("train", (0, per_class[0])), ("val", (per_class[0], sum(per_class)))):
            folder = root / split / f"digit{c}"
            folder.mkdir(parents=True)
            for i in idx[lo:hi]:
                Image.fromarray(images[i]).save(folder / f"{i}.png")
    return root


def tiny_config(width: int = 8, head: int = 32) -> mixnet.MixNetConfig:
    """A two-block MixNet with every feature of the family: MixConv 3/5/7, grouped 1x1s, SE, swish."""
    return mixnet.MixNetConfig.from_strings(
        [
            [f"r1_k3_a1_p1_s11_e1_i{width}_o{width}"],
            [f"r1_k3.5.7_a1.1_p1.1_s22_e3_i{width}_o{width * 3 // 2}_se0.5_sw"],
        ],
        stem_channels=width,
        head_channels=head,
    )


# The quick subset (-m "not slow") runs every registry-wide test on the two small models that cover both
# padding rules; the other registered models run in the full suite.
QUICK_MODELS = {"mixnet_s", "tf_mixnet_s"}


def pytest_collection_modifyitems(config, items):
    """Marks the registry-wide parametrisations of the larger models as slow."""
    for item in items:
        params = getattr(item, "callspec", None)
        name = params.params.get("name") if params is not None else None
        if isinstance(name, str) and name in mixnet.list_models() and name not in QUICK_MODELS:
            item.add_marker(pytest.mark.slow)

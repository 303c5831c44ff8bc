"""Memory that gradient checkpointing saves: bytes of tensors kept for the backward pass in one training step.

Counted exactly with ``torch.autograd.graph.saved_tensors_hooks`` (deterministic, unlike a peak-RSS
reading on a shared machine), for mixnet_s at batch 8 and 224 px, with and without
``set_grad_checkpointing()``. Weights that autograd keeps by reference are listed apart from activations.

    .venv/bin/python benchmarks/probes/grad_checkpointing_memory.py    # writes docs/results/grad_checkpointing.json
"""

import json
from pathlib import Path

import torch

import mixnet
from mixnet.measure.output import emit

OUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "grad_checkpointing.json"


def saved_bytes(model: torch.nn.Module, x: torch.Tensor, enable: bool) -> dict[str, float]:
    """MiB saved for backward in one forward/backward, all tensors and activations only."""
    model.set_grad_checkpointing(enable)
    params = {p.data_ptr() for p in model.parameters()}
    total = activations = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total, activations
        size = t.numel() * t.element_size()
        total += size
        activations += 0 if t.data_ptr() in params else size
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(x).square().mean()
    loss.backward()
    return {"saved_mib": round(total / 2**20, 1), "activations_mib": round(activations / 2**20, 1)}


def main() -> None:
    """Counts both and writes the JSON."""
    torch.manual_seed(0)
    model = mixnet.create_model("mixnet_s").train()
    x = torch.randn(8, 3, 224, 224)
    result = {
        "model": "mixnet_s",
        "batch": 8,
        "img_size": 224,
        "without": saved_bytes(model, x, False),
        "with": saved_bytes(model, x, True),
        "torch": torch.__version__,
        "command": "python benchmarks/probes/grad_checkpointing_memory.py",
    }
    result["activation_ratio"] = round(result["without"]["activations_mib"] / result["with"]["activations_mib"], 1)
    emit(json.dumps(result, indent=2) + "\n", OUT)


if __name__ == "__main__":
    main()

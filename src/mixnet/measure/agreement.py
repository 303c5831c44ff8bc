"""When two runs of one network compute the same outputs: one rule for export checks and benchmarks.

Float32 rounding grows with the activations, so the allowed max-abs difference is relative to the
reference output's scale (its largest absolute value, at least 1). :func:`mixnet.deploy.export.to_onnx`
keeps a file only if it agrees by this rule, and ``mixnet bench`` times contenders only if they agree by
it, so a file that passed its export check also passes the benchmark's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

# The default tolerance, relative to the output's scale. A MixNet-S trained at 32 px and exported at 64 px
# gives logits of ~450, where ONNX Runtime differs from eager PyTorch by 1.1e-4 of that (and eager float32
# from float64 by 2e-5); a wrong graph (padding, layout, a dropped op) differs by a good part of the scale.
DEFAULT_TOLERANCE = 1e-3


def output_scale(outputs: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """The largest absolute value of ``outputs`` (one tensor or several): float32 rounding errors grow with it."""
    tensors = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    return max(t.float().abs().max().item() for t in tensors)


def allowed_difference(scale: float, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The largest max-abs difference to a reference of largest absolute value ``scale`` that counts as
    agreement: ``tolerance * max(1, scale)``."""
    return tolerance * max(1.0, scale)


def agrees(diff: float, scale: float, tolerance: float = DEFAULT_TOLERANCE) -> bool:
    """Whether a max-abs difference ``diff`` to a reference of scale ``scale`` is within the rule (NaN is not)."""
    return diff <= allowed_difference(scale, tolerance)


def check_agreement(
    contenders: Mapping[str, Callable[[], torch.Tensor]],
    reference: str | Mapping[str, str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    checked: Callable[[str], bool] = lambda name: "int8" not in name,
) -> dict[str, float]:
    """Max abs output difference of each contender to its reference; checked ones must :func:`agree <agrees>`.

    A benchmark of contenders that compute different things would compare nothing: this runs each once
    and raises if a checked one is off (by default every contender but int8 ones, whose difference is
    reported, not checked).

    Args:
        contenders: name -> zero-argument callable returning the output.
        reference: the one contender all are compared with, or name -> its own reference (contenders not
            in the mapping, such as a GEMM that computes no logits, are skipped).
        tolerance: the allowed difference, relative to the reference output's scale.
        checked: which contenders must agree.

    Raises:
        RuntimeError: a checked contender disagrees.
    """
    refs = {name: reference for name in contenders} if isinstance(reference, str) else dict(reference)
    outs = {name: contenders[name]() for name in {*refs, *refs.values()}}
    diffs = {name: (outs[name] - outs[ref]).abs().max().item() for name, ref in refs.items()}
    off = {
        n: f"{d:.3g} > {allowed_difference(output_scale(outs[refs[n]]), tolerance):.3g}"
        for n, d in diffs.items()
        if checked(n) and not agrees(d, output_scale(outs[refs[n]]), tolerance)
    }
    if off:
        raise RuntimeError(
            f"contenders disagree with their reference by more than {tolerance:g} of its output scale: {off}"
        )
    return diffs

"""The contrasts a study file fixes in advance: each a paired comparison ``b - a`` of two variants over seeds.

Every contrast is tested with :func:`mixnet.experiment.stats.paired` (mean per-seed difference, Student's t
CI and two-sided p) and Holm-corrected over all the study's contrasts; it is "resolved" when its corrected p
is below :data:`ALPHA`. A positive control (a contrast expected to matter) shows whether the design could
detect an effect at all, and the smallest difference detectable at the study's seed count (from the
paired differences' SD, at Holm's strictest level) says how large an unresolved effect could still be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mixnet.experiment.stats import Paired, holm_correct, minimum_detectable_difference, paired

ALPHA = 0.05
POWER = 0.8


def contrast_results(study, summary: Sequence[dict]) -> list[Paired]:
    """Every contrast of ``study`` (``b - a`` in top-1 points, paired by seed), Holm-corrected over all of them.

    ``summary`` is :func:`mixnet.study.results.summarize`'s rows; a variant without finished runs pairs no seed.
    """
    by_key = {r["key"]: {int(s): v for s, v in (r.get("top1_by_seed") or {}).items()} for r in summary}
    found = [paired(by_key.get(c.a, {}), by_key.get(c.b, {}), label=f"{c.b} - {c.a}") for c in study.contrasts]
    return holm_correct(found)


def detectable(results: Sequence[Paired], *, alpha: float = ALPHA) -> float:
    """The smallest true difference (points) detected with :data:`POWER` at the study's seed count.

    Taken from the root mean square of the contrasts' paired SDs, at level ``alpha / m`` (Holm's first,
    strictest step over m contrasts); nan with fewer than two seeds.
    """
    sds = [c.sd for c in results if c.n >= 2 and not math.isnan(c.sd)]
    if not sds:
        return math.nan
    n = min(c.n for c in results if c.n >= 2)
    rms = math.sqrt(sum(s * s for s in sds) / len(sds))
    return minimum_detectable_difference(rms, n, alpha=alpha / _tested(results), power=POWER)


def _tested(results: Sequence[Paired]) -> int:
    """How many contrasts Holm's correction counts (those with a p: two seeds or more)."""
    return sum(not math.isnan(c.p) for c in results)


def _verdict(c: Paired) -> str:
    if c.n < 2:
        return "no significance can be claimed (fewer than two seeds)"
    return "resolved" if c.resolved(ALPHA) else "not resolved"


def contrast_lines(study, summary: Sequence[dict]) -> list[str]:
    """The report's section on the study's contrasts (markdown lines); empty when the study fixes none."""
    if not study.contrasts:
        return []
    results = contrast_results(study, summary)
    lines = [
        "## Contrasts fixed in the study file",
        "",
        "| contrast | b - a | mean difference (points) | 95% CI | p | Holm p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec, c in zip(study.contrasts, results, strict=True):
        name = spec.name + (" (positive control)" if spec.positive_control else "")
        ci = "-" if c.n < 2 else f"{c.ci[0]:+.2f} to {c.ci[1]:+.2f}"
        p = "-" if c.n < 2 else f"{c.p:.3g}"
        holm = "-" if c.p_holm is None else f"{c.p_holm:.3g}"
        mean = "-" if c.n == 0 else f"{c.mean:+.2f}"
        lines.append(f"| {name} | {c.label} | {mean} | {ci} | {p} | {holm} | {_verdict(c)} |")
    lines.append("")
    seeds = max((c.n for c in results), default=0)
    if seeds < 2:
        lines += ["One seed: no significance can be claimed; each difference is a single pair of runs.", ""]
        return lines
    lines.append(
        "Each contrast pairs the two variants' runs of the same seed "
        f"(n seeds that both finished, {_seed_counts(results)}): the mean per-seed difference, its 95% CI "
        "(Student's t, n - 1 degrees of freedom) and two-sided p, "
        f"Holm-corrected over the {_tested(results)} contrasts; resolved: corrected p < {ALPHA}."
    )
    for spec, c in zip(study.contrasts, results, strict=True):
        if spec.positive_control:
            outcome = (
                "resolved: the design detects an effect of this size"
                if c.resolved(ALPHA)
                else "not resolved: the design did not detect even this effect, so the other contrasts' "
                '"not resolved" says little'
            )
            lines.append(f"Positive control `{spec.name}`: {outcome} ({c.describe()}).")
    if not any(s.positive_control for s in study.contrasts):
        lines.append("The study names no positive control: nothing shows that its design can detect an effect.")
    mdd = detectable(results)
    if not math.isnan(mdd):
        lines.append(
            f"Smallest detectable difference: {mdd:.2f} points (power {POWER:.0%} at level {ALPHA}/{_tested(results)}, "
            f"from the contrasts' paired SD at {min(c.n for c in results if c.n >= 2)} seeds); a true effect smaller "
            "than this may stay unresolved."
        )
    lines.append("")
    return lines


def _seed_counts(results: Sequence[Paired]) -> str:
    """``n = 3`` when every contrast pairs the same number of seeds, else the range ``n = 2 to 3``."""
    ns = sorted({c.n for c in results})
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]} to {ns[-1]}"

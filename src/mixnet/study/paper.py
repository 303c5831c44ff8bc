"""The paper's kernel-study results: approximate ImageNet top-1 read off its Figures 1 and 4.

Read off the plots by a third party (about +-0.1 of plot-reading error). They are drawn beside a
study's own results as reference curves, never used as targets. Each curve maps a kernel spec (the
x position is its largest kernel) to top-1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperCurve:
    """One curve of the paper's figures.

    Attributes:
        model: the baseline (registry name).
        family: ``single`` (one kernel size everywhere) or ``mixconv`` (groups 3, 5, ..., 2g+1).
        figure: where in the paper it is.
        top1: kernel spec text -> ImageNet top-1 (%).
    """

    model: str
    family: str
    figure: str
    top1: dict[str, float]


PAPER_CURVES: dict[str, PaperCurve] = {
    "fig1_v1": PaperCurve(
        "mobilenet_v1",
        "single",
        "Figure 1",
        {"k3": 71.1, "k5": 71.9, "k7": 72.0, "k9": 71.9, "k11": 71.5, "k13": 70.8},
    ),
    "fig4_v1": PaperCurve(
        "mobilenet_v1",
        "mixconv",
        "Figure 4",
        {"k3": 71.1, "k3.5": 72.0, "k3.5.7": 72.2, "k3.5.7.9": 72.4, "k3.5.7.9.11": 72.5, "k3.5.7.9.11.13": 72.6},
    ),
    "fig4_v2": PaperCurve(
        "mobilenet_v2",
        "mixconv",
        "Figure 4",
        {"k3": 72.9, "k3.5": 73.5, "k3.5.7": 73.9, "k3.5.7.9": 74.1, "k3.5.7.9.11": 74.3, "k3.5.7.9.11.13": 74.3},
    ),
}

"""Statistics for comparing trained nets over a few seeds: paired differences, Holm, rank correlation.

Two variants trained with the same seed share that seed's data split, order and initial state, so their
per-seed differences carry less noise than their separate means: a comparison pairs runs by seed and
tests the mean difference with Student's t on n - 1 degrees of freedom (with 3 seeds the two-sided 95%
cutoff is 4.30, not 2). Several contrasts reported together are corrected with Holm's step-down method.
Ranking quality (a supernet's scores against trained accuracy) is Kendall's tau-b or Spearman's rho with
a percentile-bootstrap interval.

The statistics themselves are a few lines of numpy; the t distribution's quantiles and tails (and the
noncentral t of the detectable difference) come from scipy.stats, imported on first use: scipy is
installed with the ``train`` extra (scikit-learn needs it), and the core never imports this module.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mixnet.errors import require

LEVEL = 0.95


def _scipy_stats():
    return require("scipy.stats", "train", "statistics over seeds")


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom."""
    return float(_scipy_stats().t.ppf(q, df))


def t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p-value of a t statistic with ``df`` degrees of freedom."""
    return float(min(1.0, 2 * _scipy_stats().t.sf(abs(t), df)))


def sign_flip_p(diffs: Sequence[float], *, samples: int = 20000, seed: int = 0) -> float:
    """Two-sided p of the sign-flip permutation test of a zero mean paired difference.

    Exact (all 2^n sign patterns) up to n = 16, else ``samples`` random patterns. Under the null each
    difference is as likely negative as positive; p is the share of patterns whose mean is at least as far
    from zero as the observed one.
    """
    d = np.asarray(diffs, dtype=np.float64)
    n = d.size
    if n == 0:
        return math.nan
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(samples, n))
    means = np.abs(signs @ d) / n
    observed = abs(d.mean())
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


@dataclass(frozen=True)
class Paired:
    """A paired comparison ``b - a`` over the seeds both have.

    Attributes:
        label: what is compared, e.g. ``k5 - k3``.
        seeds: the seeds paired.
        diffs: ``b - a`` per seed.
        mean: mean paired difference.
        sd: standard deviation of the differences (n - 1 in the denominator; nan with one seed).
        se: standard error of the mean difference.
        t: the t statistic (nan with one seed).
        df: degrees of freedom, n - 1.
        p: two-sided p of the t test (nan with one seed).
        ci: the ``level`` confidence interval of the mean difference.
        level: the interval's confidence level.
        p_permutation: the sign-flip permutation test's p, when asked for.
        p_holm: p after Holm's correction over the contrasts reported with it, when applied.
    """

    label: str
    seeds: tuple
    diffs: tuple[float, ...]
    mean: float
    sd: float
    se: float
    t: float
    df: int
    p: float
    ci: tuple[float, float]
    level: float = LEVEL
    p_permutation: float | None = None
    p_holm: float | None = None

    @property
    def n(self) -> int:
        """Number of seed pairs."""
        return len(self.diffs)

    @property
    def p_reported(self) -> float:
        """The p that decides: Holm-corrected when corrected."""
        return self.p if self.p_holm is None else self.p_holm

    def resolved(self, alpha: float = 0.05) -> bool:
        """Whether the difference is significant at ``alpha`` (after Holm when corrected); never with one seed."""
        return self.n >= 2 and self.p_reported < alpha

    def describe(self, unit: str = " points") -> str:
        """One line: the mean difference with its CI and p (or why no significance can be claimed)."""
        if self.n == 0:
            return f"{self.label}: no seed in common"
        if self.n == 1:
            return f"{self.label}: {self.mean:+.2f}{unit} (one seed: no significance can be claimed)"
        p = f"p {_p(self.p)}" + ("" if self.p_holm is None else f", Holm-corrected p {_p(self.p_holm)}")
        return (
            f"{self.label}: {self.mean:+.2f}{unit} ({self.level:.0%} CI {self.ci[0]:+.2f} to {self.ci[1]:+.2f}, "
            f"{p}, {self.n} seeds)"
        )

    def to_dict(self) -> dict:
        """JSON-able values."""
        d = dataclasses.asdict(self)
        d["seeds"], d["diffs"], d["ci"] = list(self.seeds), list(self.diffs), list(self.ci)
        return d


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def paired(a: Mapping, b: Mapping, *, label: str = "", level: float = LEVEL, permutation: bool = False) -> Paired:
    """Compares ``b`` with ``a`` (seed -> value each) on the seeds both have: mean of ``b - a``, t test, CI.

    Args:
        a: the reference's value per seed.
        b: the contender's value per seed.
        label: what is compared (for :meth:`Paired.describe`).
        level: confidence level of the interval.
        permutation: also run the exact sign-flip permutation test.
    """
    seeds = tuple(s for s in a if s in b)
    d = np.array([b[s] - a[s] for s in seeds], dtype=np.float64)
    n = d.size
    nan = math.nan
    if n == 0:
        return Paired(label, seeds, (), nan, nan, nan, nan, 0, nan, (nan, nan), level)
    mean = float(d.mean())
    if n == 1:
        return Paired(label, seeds, tuple(d.tolist()), mean, nan, nan, nan, 0, nan, (nan, nan), level)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    df = n - 1
    if se > 0:
        t = mean / se
        p = t_two_sided_p(t, df)
    else:  # every seed gave the same difference: certain when it is not zero
        t = math.copysign(math.inf, mean) if mean else 0.0
        p = 0.0 if mean else 1.0
    half = t_quantile(0.5 + level / 2, df) * se
    perm = sign_flip_p(d) if permutation else None
    return Paired(label, seeds, tuple(d.tolist()), mean, sd, se, t, df, p, (mean - half, mean + half), level, perm)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given); nan stays nan and does not count."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def holm_correct(comparisons: Sequence[Paired]) -> list[Paired]:
    """The comparisons with ``p_holm`` set, corrected over all of them (those with one seed do not count)."""
    adjusted = holm([c.p for c in comparisons])
    return [
        dataclasses.replace(c, p_holm=None if math.isnan(q) else q) for c, q in zip(comparisons, adjusted, strict=True)
    ]


def minimum_detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference a two-sided paired t test detects with ``power``.

    Args:
        sd: standard deviation of the per-seed differences.
        n: number of seed pairs.
        alpha: the test's level (divide by the number of contrasts for Holm's first step).
        power: the wanted probability of detecting it.

    Solved on the noncentral t distribution (the exact power of the t test), not the normal approximation,
    which is far off at 3-5 seeds.
    """
    if n < 2 or not sd > 0:
        return math.nan
    stats = _scipy_stats()
    optimize = require("scipy.optimize", "train", "statistics over seeds")
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        # scipy's noncentral t returns NaN for some far tails (e.g. the lower one at nc 10, 3 df): that tail,
        # a rejection of the wrong sign, is then below 1e-10, and an upper tail past its reach is 1.
        upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
        upper = upper if math.isfinite(upper) else float(nc > crit)
        return upper + (lower if math.isfinite(lower) else 0.0) - power

    hi = sd
    while shortfall(hi) < 0:
        hi *= 2
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-10 * sd))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share the mean of their ranks)."""
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, axis=-1)
    ranks = np.empty_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape[:-1]):
        v = s[idx]
        first = np.r_[True, v[1:] != v[:-1]]
        group = np.cumsum(first) - 1
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], v.size]
        r = ((starts + ends - 1) / 2 + 1)[group]
        ranks[idx][order[idx]] = r
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(-1) / den, np.nan)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (nan when either side is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(_pearson(_ranks(x), _ranks(y)))


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking accounted for; nan when either side is constant)."""
    return float(_kendall(np.asarray(x, dtype=np.float64)[None], np.asarray(y, dtype=np.float64)[None])[0])


def _kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tau-b of each row pair of ``x`` and ``y`` (shape (B, n))."""
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    num = (sx * sy).sum(-1)
    den = np.sqrt((sx != 0).sum(-1) * (sy != 0).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


@dataclass(frozen=True)
class Correlation:
    """A rank correlation with its bootstrap interval.

    Attributes:
        method: ``kendall`` (tau-b) or ``spearman``.
        value: the coefficient on the data.
        ci: percentile-bootstrap interval (pairs resampled with replacement).
        level: the interval's confidence level.
        n: number of pairs.
        resamples: bootstrap resamples with a defined coefficient.
    """

    method: str
    value: float
    ci: tuple[float, float]
    level: float
    n: int
    resamples: int

    def describe(self) -> str:
        """One line, e.g. ``Kendall tau 0.42 (95% CI 0.10 to 0.68, 24 nets)``."""
        name = {"kendall": "Kendall tau", "spearman": "Spearman rho"}[self.method]
        return f"{name} {self.value:.2f} ({self.level:.0%} CI {self.ci[0]:.2f} to {self.ci[1]:.2f}, {self.n} pairs)"


def rank_correlation(
    x: Sequence[float],
    y: Sequence[float],
    method: str = "kendall",
    *,
    resamples: int = 2000,
    level: float = LEVEL,
    seed: int = 0,
) -> Correlation:
    """Kendall's tau-b or Spearman's rho of ``x`` and ``y`` with a percentile-bootstrap interval.

    Resamples in which either side is constant have no coefficient and are left out.
    """
    if method not in ("kendall", "spearman"):
        raise ValueError(f"method must be kendall or spearman, got {method!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"need two equally long lists of at least 3 values, got {x.size} and {y.size}")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(resamples, x.size))
    if method == "kendall":
        value = kendall(x, y)
        boot = _kendall(x[idx], y[idx])
    else:
        value = spearman(x, y)
        boot = _pearson(_ranks(x[idx]), _ranks(y[idx]))
    boot = boot[~np.isnan(boot)]
    tail = (1 - level) / 2 * 100
    ci = tuple(float(v) for v in np.percentile(boot, [tail, 100 - tail])) if boot.size else (math.nan, math.nan)
    return Correlation(method, value, ci, level, int(x.size), int(boot.size))

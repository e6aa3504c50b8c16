"""Statistics of the leaderboard, as small pure functions of numpy arrays (higher scores are better throughout).

- Spread over seeds: mean, sample standard deviation (ddof=1) and the t-interval of the mean
  (``scipy.stats.t``, n − 1 degrees of freedom). A percentile bootstrap over 3–5 seeds is not used: with so few
  values it is roughly the min–max range and undercovers badly.
- Paired tests against the baseline over matched seeds. PRIMARY: the exact sign-flip (permutation) test of the
  mean difference (no normality assumption). It has a floor: with n non-zero differences no two-sided p goes below
  2 / 2**n, so :func:`min_pairs` (computed, not hard-coded) is the fewest pairs that can reach α. Every sign
  pattern is enumerated up to 40 differences (beyond 16 by meet in the middle); a fixed-seed Monte Carlo beyond.
  SECONDARY: the paired t-test, reported for reference; when the differences have no variance its statistic is
  undefined, so its p is NaN (never 0: one test example better on each of 3 seeds is not "infinitely significant")
  and the exact test decides.
- Holm's step-down correction over a whole family (the caller decides the family: one table).
- Power: the minimum detectable effect (MDE) of the two-sided paired t-test at 80% power, from the noncentral t
  distribution (not the normal approximation, which understates the MDE at 3–5 seeds).
- Ranks: 1 = best, ties get the average of the ranks they span. Across tasks (Demšar 2006): see crossdataset.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import integrate, optimize, stats

Values = Sequence[float] | np.ndarray  # paired scores: a list, or an array column

ALPHA = 0.05
POWER = 0.80
EXACT_SIGN_FLIP_MAX_N = 16  # 65,536 sign patterns enumerated as a matrix
EXACT_SPLIT_MAX_N = 40  # up to here, still exact: two halves of ≤ 2^20 partial sums (meet in the middle)
MONTE_CARLO_DRAWS = 2**16  # beyond EXACT_SPLIT_MAX_N: a fixed-seed Monte Carlo of this many sign patterns
MONTE_CARLO_SEED = 0
ZERO = 1e-12  # differences below this are "no difference" (scores are fractions in [0, 1])


def _clean(values: Values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the finite values; std is NaN below two values."""
    x = _clean(values)
    if not len(x):
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def t_interval(values: Values, level: float = 0.95) -> tuple[float, float]:
    """Two-sided t-interval of the mean (n − 1 df); NaNs below two values; a point when all values are equal."""
    x = _clean(values)
    if len(x) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def differences(x: Values, y: Values) -> np.ndarray:
    """Paired differences x − y; pairs with a NaN on either side dropped."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    return d[np.isfinite(d)]


def no_variance(d: np.ndarray) -> bool:
    return bool(len(d)) and float(np.ptp(d)) <= ZERO * max(1.0, float(np.abs(d).max()))


def paired_t(x: Values, y: Values) -> float:
    """Two-sided p of the paired t-test; NaN below two pairs or when the differences have no variance (then the
    t statistic is ±∞ or undefined, and :func:`sign_flip` decides)."""
    d = differences(x, y)
    if len(d) < 2 or no_variance(d):
        return math.nan
    p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return max(p, np.finfo(float).tiny)  # an underflow to 0 would read as certainty


def sign_flip_floor(n_nonzero: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give with this many non-zero differences."""
    return 1.0 if n_nonzero == 0 else min(1.0, 2.0 / 2**n_nonzero)


def min_pairs(alpha: float = ALPHA, family: int = 1) -> int:
    """Fewest non-zero pairs whose sign-flip floor, times ``family`` (the first Holm step), is below ``alpha``."""
    n = 1
    while family * sign_flip_floor(n) >= alpha:
        n += 1
    return n


def can_reach(n_nonzero: int, alpha: float = ALPHA) -> bool:
    return sign_flip_floor(n_nonzero) < alpha


def sign_flip(x: Values, y: Values) -> tuple[float, float]:
    """Exact two-sided sign-flip test of the mean paired difference; returns (p, floor). p ≥ floor > 0 always."""
    d = differences(x, y)
    d = d[np.abs(d) > ZERO]  # a zero difference has no sign to flip
    if not len(d):
        return 1.0, 1.0
    if EXACT_SIGN_FLIP_MAX_N < len(d) <= EXACT_SPLIT_MAX_N:
        return _split_sign_flip(d), sign_flip_floor(len(d))
    if len(d) <= EXACT_SIGN_FLIP_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(MONTE_CARLO_SEED).choice((1.0, -1.0), size=(MONTE_CARLO_DRAWS, len(d)))
        signs[0] = 1.0  # the observed pattern is one of the draws, so p stays ≥ 1/draws
    observed = abs(d.mean())
    extreme = np.abs((signs * d).mean(axis=1)) >= observed - ZERO
    return float(extreme.mean()), sign_flip_floor(len(d))


def sign_flip_basis(n_nonzero: int) -> str:
    """How :func:`sign_flip` gets its p at this many non-zero differences (for captions)."""
    if n_nonzero <= EXACT_SPLIT_MAX_N:
        return "exact"
    return f"Monte Carlo ({MONTE_CARLO_DRAWS:,} fixed-seed sign patterns)"


def _half_sums(d: np.ndarray) -> np.ndarray:
    """Σ ±dᵢ over every sign pattern of ``d`` (2^len(d) values)."""
    sums = np.zeros(1)
    for value in d:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def _split_sign_flip(d: np.ndarray) -> float:
    """The exact sign-flip p by meet in the middle: every pattern's sum is a + b with a from the first half's 2^h
    partial sums and b from the second's, so counting |a + b| ≥ |Σd| needs two sorted-array searches per a, not
    2^n rows. Pooled comparisons (tasks × seeds, 20–40 pairs) stay exact where a matrix of patterns would not fit.
    The same tolerance as the matrix path: |mean| ≥ observed − ZERO, i.e. |sum| ≥ |Σd| − n·ZERO."""
    threshold = abs(float(d.sum())) - len(d) * ZERO
    if threshold <= 0:
        return 1.0
    half = len(d) // 2
    first, second = _half_sums(d[:half]), np.sort(_half_sums(d[half:]))
    above = len(second) - np.searchsorted(second, threshold - first, side="left")  # a + b ≥ threshold
    below = np.searchsorted(second, -threshold - first, side="right")  # a + b ≤ −threshold
    return float((int(above.sum()) + int(below.sum())) / 2.0 ** len(d))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order; NaNs stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - i) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def wilcoxon(x: Values, y: Values) -> float:
    """Two-sided Wilcoxon signed-rank p over matched pairs (zero differences dropped; all zero → 1)."""
    d = differences(x, y)
    d = d[np.abs(d) > ZERO]
    if not len(d):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """SD of paired differences pooled over comparisons: sqrt(Σ (nᵢ−1) sᵢ² / Σ (nᵢ−1)), i.e. weighted by degrees
    of freedom (comparisons with < 2 pairs add nothing); returns (sd, comparisons used)."""
    used = [np.asarray(g, dtype=float) for g in groups]
    used = [g[np.isfinite(g)] for g in used]
    used = [g for g in used if len(g) >= 2]
    dof = sum(len(g) - 1 for g in used)
    if not dof:
        return math.nan, 0
    return math.sqrt(sum(float(((g - g.mean()) ** 2).sum()) for g in used) / dof), len(used)


def t_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test with n pairs for a true mean difference ``effect``."""
    df, nc = n - 1, effect / sd * math.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    power = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    return power if math.isfinite(power) else _t_power_by_integration(nc, df, crit)


def _t_power_by_integration(nc: float, df: int, crit: float) -> float:
    """The same power from its definition, T = (Z + nc) / sqrt(V/df) with V ~ χ²(df): scipy's noncentral t returns
    NaN for some (df, nc), e.g. 2 seeds (df = 1) and a large effect, which stopped the smoke leaderboard."""
    def integrand(v: float) -> float:
        scale = crit * math.sqrt(v / df)
        return (stats.norm.cdf(nc - scale) + stats.norm.cdf(-nc - scale)) * stats.chi2.pdf(v, df)

    return float(integrate.quad(integrand, 0.0, math.inf, limit=200)[0])


def mde(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference the paired t-test detects with ``power`` (noncentral t, solved by brentq);
    NaN when the SD is unknown or n < 2; 0 when the differences never vary."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd <= ZERO:
        return 0.0
    high = sd
    while t_power(high, sd, n, alpha) < power:  # bracket the root: power rises monotonically with the effect
        high *= 2
    return float(optimize.brentq(lambda e: t_power(e, sd, n, alpha) - power, 0.0, high, xtol=1e-12))


def ranks(scores: Sequence[float]) -> np.ndarray:
    """Rank 1 = highest score; ties share the average rank; NaN scores get NaN ranks."""
    s = np.asarray(scores, dtype=float)
    out = np.full(len(s), math.nan)
    ok = np.isfinite(s)
    out[ok] = stats.rankdata(-s[ok], method="average")
    return out


def failure_rate(statuses: Sequence[str]) -> float:
    """(failed + diverged runs) ÷ runs."""
    return sum(s != "ok" for s in statuses) / len(statuses) if len(statuses) else math.nan

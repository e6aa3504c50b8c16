"""Statistics of the leaderboard, as small pure functions of numpy arrays (higher scores are better throughout).

- Spread over seeds: mean, sample standard deviation (ddof=1), percentile bootstrap 95% CI of the mean (10,000
  resamples, fixed seed 0, so the same scores always give the same interval).
- Paired tests against the baseline over matched seeds: the paired t-test (scipy), and the exact sign-flip
  (permutation) test of the mean difference, which makes no normality assumption but has a floor: with n non-zero
  differences no two-sided p can go below 2 / 2**n (0.0625 for 5 seeds). Degenerate cases are decided, not NaN: all
  differences zero → p = 1; the same non-zero difference on every seed → p = 0 for the t-test.
- Holm's step-down correction across tasks (family-wise error at 5%).
- Overall: Wilcoxon signed-rank over all (task, seed) pairs; Friedman over tasks with the Nemenyi critical
  difference (Demšar 2006), q from the studentized range distribution.
- Ranks: 1 = best, ties get the average of the ranks they span.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
EXACT_SIGN_FLIP_MAX_N = 16  # 65,536 sign patterns; beyond, a fixed-seed Monte Carlo of the same size


def _clean(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of the finite values; std is NaN below two values."""
    x = _clean(values)
    if not len(x):
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def bootstrap_ci(values: Sequence[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over seeds; NaNs below two values."""
    x = _clean(values)
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_t(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p of the paired t-test of x against y (matched pairs; pairs with a NaN dropped)."""
    d = _differences(x, y)
    if len(d) < 2:
        return math.nan
    if np.allclose(d, d[0], rtol=0, atol=1e-12):  # no variance: the test is decided by whether they differ at all
        return 1.0 if abs(d[0]) <= 1e-12 else 0.0
    return float(stats.ttest_rel(d, np.zeros_like(d)).pvalue)


def _differences(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = a - b
    return d[np.isfinite(d)]


def sign_flip_floor(n_nonzero: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give with this many non-zero differences."""
    return 1.0 if n_nonzero == 0 else min(1.0, 2.0 / 2**n_nonzero)


def sign_flip(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Exact two-sided sign-flip test of the mean paired difference; returns (p, floor)."""
    d = _differences(x, y)
    d = d[np.abs(d) > 1e-12]  # a zero difference has no sign to flip
    if not len(d):
        return 1.0, 1.0
    if len(d) <= EXACT_SIGN_FLIP_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(BOOTSTRAP_SEED).choice((1.0, -1.0), size=(2**EXACT_SIGN_FLIP_MAX_N, len(d)))
    observed = abs(d.mean())
    extreme = np.abs((signs * d).mean(axis=1)) >= observed - 1e-12
    return float(extreme.mean()), sign_flip_floor(len(d))


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


def wilcoxon(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p over matched pairs (zero differences dropped; all zero → 1)."""
    d = _differences(x, y)
    d = d[np.abs(d) > 1e-12]
    if not len(d):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def ranks(scores: Sequence[float]) -> np.ndarray:
    """Rank 1 = highest score; ties share the average rank; NaN scores get NaN ranks."""
    s = np.asarray(scores, dtype=float)
    out = np.full(len(s), math.nan)
    ok = np.isfinite(s)
    out[ok] = stats.rankdata(-s[ok], method="average")
    return out


def friedman(matrix: np.ndarray) -> float:
    """Friedman p over blocks (rows: tasks) × treatments (columns: methods); NaN below 2 blocks or 3 methods."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 3 or not np.isfinite(m).all():
        return math.nan
    if np.all(m == m[:, :1]):  # every method tied on every task
        return 1.0
    return float(stats.friedmanchisquare(*m.T).pvalue)


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Critical difference of average ranks for k methods over n blocks (two methods whose average ranks differ
    by more are significantly different at ``alpha``)."""
    if k < 2 or n < 1:
        return math.nan
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def failure_rate(statuses: Sequence[str]) -> float:
    """(failed + diverged runs) ÷ runs."""
    return sum(s != "ok" for s in statuses) / len(statuses) if len(statuses) else math.nan

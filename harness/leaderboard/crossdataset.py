"""Comparisons across tasks (Demšar 2006), pure functions of a tasks × methods matrix of per-task means.

- Friedman χ² over the ranks, with the Iman–Davenport F correction (the χ² form is known to be conservative):
  F = (N − 1) χ² / (N (k − 1) − χ²) with (k − 1, (k − 1)(N − 1)) df.
- Post-hoc: the Nemenyi critical difference of average ranks (all pairs; q from scipy's studentized range) and
  Holm over the k − 1 rank z-tests against the control (STD): z = (Rᵢ − R₀) / sqrt(k (k + 1) / (6 N)).
- Nemenyi pairwise p-values for the critical-difference diagram come from scikit-posthocs
  (``posthoc_nemenyi_friedman``), the diagram itself from its ``critical_difference_diagram`` (plots.py).
- Wilcoxon signed-rank on per-task MEAN differences (one pair per task, so the n of the test is the number of
  tasks, not tasks × seeds: seeds of one task are not independent evidence about another task).
- Almost stochastic order (Dror et al. 2019; del Barrio et al. 2018) from deepsig's ``aso``, fixed seed.

autorank 1.3.0 installs and runs with numpy 2.4 / pandas 3.1 / scipy 1.17 but is not used: it chooses the test
itself (normality and homoscedasticity checks can switch it to repeated-measures ANOVA + Tukey), reports the plain
Friedman χ² p rather than Iman–Davenport, and has no Holm-vs-control procedure; the pieces we need are a few lines
of scipy each (and would pull in baycomp and jinja2 for nothing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import stats

ASO_SEED = 0
ASO_BOOTSTRAP = 200  # deepsig's default is 1000: seconds per comparison on one core; 200 keeps a table's build short
ASO_SAMPLES = 1000


def friedman(matrix: np.ndarray) -> dict[str, float]:
    """Friedman χ² and its p, and the Iman–Davenport F and its p, over blocks (rows: tasks) × methods (columns);
    NaNs below 2 tasks or 3 methods (and p = 1 when every method ties on every task)."""
    m = np.asarray(matrix, dtype=float)
    out = {"chi2": math.nan, "friedman_p": math.nan, "iman_davenport_f": math.nan, "iman_davenport_p": math.nan}
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 3 or not np.isfinite(m).all():
        return out
    if np.all(m == m[:, :1]):
        return {"chi2": 0.0, "friedman_p": 1.0, "iman_davenport_f": 0.0, "iman_davenport_p": 1.0}
    n, k = m.shape
    result = sps.friedmanchisquare(*m.T)
    chi2 = float(result.statistic)
    out.update(chi2=chi2, friedman_p=float(result.pvalue))
    denominator = n * (k - 1) - chi2
    if denominator <= 0:  # every task ranks the methods identically: F is infinite; no p = 0, the χ² p stands
        out.update(iman_davenport_f=math.inf)
    else:
        f = (n - 1) * chi2 / denominator
        out.update(iman_davenport_f=f, iman_davenport_p=float(sps.f.sf(f, k - 1, (k - 1) * (n - 1))))
    return out


def nemenyi_cd(k: int, n: int, alpha: float = stats.ALPHA) -> float:
    """Critical difference of average ranks for k methods over n blocks (two methods whose average ranks differ
    by more are significantly different at ``alpha``)."""
    if k < 2 or n < 1:
        return math.nan
    q = sps.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


def average_ranks(matrix: pd.DataFrame) -> pd.Series:
    """Average rank per method (column) over tasks (rows); 1 = best."""
    ranked = np.vstack([stats.ranks(row) for row in matrix.to_numpy(float)])
    return pd.Series(ranked.mean(axis=0), index=matrix.columns)


def holm_vs_control(matrix: pd.DataFrame, control: str) -> dict[str, float]:
    """Holm-adjusted two-sided p of each method's rank z-test against ``control``; {} if no test is possible."""
    n, k = matrix.shape
    if control not in matrix.columns or n < 2 or k < 3:
        return {}
    rank = average_ranks(matrix)
    se = math.sqrt(k * (k + 1) / (6 * n))
    others = [m for m in matrix.columns if m != control]
    raw = [2 * float(sps.norm.sf(abs(rank[m] - rank[control]) / se)) for m in others]
    return dict(zip(others, stats.holm(raw)))


def nemenyi_pvalues(matrix: pd.DataFrame) -> pd.DataFrame:
    """Pairwise Nemenyi p-values (methods × methods) from scikit-posthocs."""
    import scikit_posthocs as sp

    table = sp.posthoc_nemenyi_friedman(matrix.to_numpy(float))
    table.index = table.columns = list(matrix.columns)
    return table


def wilcoxon_task_means(matrix: pd.DataFrame, control: str) -> dict[str, tuple[int, float]]:
    """Per method: (tasks paired, two-sided Wilcoxon p) on the per-task mean differences to ``control``."""
    out = {}
    for method in matrix.columns:
        if method == control or control not in matrix.columns:
            continue
        d = stats.differences(matrix[method], matrix[control])
        out[method] = (len(d), stats.wilcoxon(d, np.zeros_like(d)) if len(d) else math.nan)
    return out


def aso(scores_a: Sequence[float], scores_b: Sequence[float], comparisons: int = 1) -> float:
    """ε_min of "A is almost stochastically larger than B" (deepsig; fixed seed; Bonferroni over ``comparisons``).
    ε_min < 0.5: A tends to score higher than B (0 = A dominates everywhere); ≥ 0.5: no evidence A is better.
    NaN below two scores on either side. The global numpy random state deepsig seeds is restored afterwards."""
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return math.nan
    from deepsig import aso as deepsig_aso

    state = np.random.get_state()
    try:
        with warnings.catch_warnings():  # "division by zero in violation ratio": tied scores; ε is still defined
            warnings.simplefilter("ignore", UserWarning)
            return float(deepsig_aso(a, b, confidence_level=0.95, num_comparisons=max(1, comparisons),
                                     num_samples=ASO_SAMPLES, num_bootstrap_iterations=ASO_BOOTSTRAP, num_jobs=1,
                                     show_progress=False, seed=ASO_SEED))
    finally:
        np.random.set_state(state)

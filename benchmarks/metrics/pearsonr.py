"""Pearson correlation (SciPy) as a local ``evaluate`` metric.

A constant prediction has no defined correlation: the score is NaN, which the harness counts as a failed run. SciPy's
``ConstantInputWarning`` is silenced because the NaN already says it, and it would repeat at every evaluation.
"""

from __future__ import annotations

import warnings

import datasets
import evaluate
from numpy.typing import ArrayLike
from scipy import stats

_DESCRIPTION = "Pearson correlation: the linear correlation between predicted and gold scores."
_CITATION = """\
@article{2020SciPy-NMeth,
  author  = {Virtanen, Pauli and others},
  title   = {{SciPy} 1.0: Fundamental Algorithms for Scientific Computing in Python},
  journal = {Nature Methods},
  year    = {2020},
  volume  = {17},
  pages   = {261--272}
}
"""
_INPUTS = """
Args:
    predictions (`list` of `float`): predicted scores.
    references (`list` of `float`): gold scores.
Returns:
    pearson (`float`): in [-1, 1]; NaN when either input is constant.
"""


class Pearsonr(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
            format="numpy",
        )

    def _compute(self, predictions: ArrayLike, references: ArrayLike) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            result = stats.pearsonr(references, predictions)
        return {"pearson": float(result.statistic)}

"""Spearman rank correlation (SciPy) as a local ``evaluate`` metric.

As for Pearson, a constant prediction scores NaN and SciPy's ``ConstantInputWarning`` is silenced.
"""

from __future__ import annotations

import warnings

import datasets
import evaluate
from numpy.typing import ArrayLike
from scipy import stats

from .pearsonr import _CITATION

_DESCRIPTION = "Spearman correlation: the Pearson correlation of the ranks of predicted and gold scores."
_INPUTS = """
Args:
    predictions (`list` of `float`): predicted scores.
    references (`list` of `float`): gold scores.
Returns:
    spearmanr (`float`): in [-1, 1]; NaN when either input is constant.
"""


class Spearmanr(evaluate.Metric):
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
            result = stats.spearmanr(references, predictions)
        return {"spearmanr": float(result.statistic)}

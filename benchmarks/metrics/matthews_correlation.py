"""Matthews correlation coefficient (scikit-learn) as a local ``evaluate`` metric.

A constant prediction scores 0.0 (scikit-learn's convention), which is what the majority-class baseline scores.
"""

from __future__ import annotations

import datasets
import evaluate
from numpy.typing import ArrayLike
from sklearn.metrics import matthews_corrcoef

from .accuracy import _CITATION

_DESCRIPTION = "Matthews correlation: the correlation between predicted and gold labels, robust to class imbalance."
_INPUTS = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): gold class ids.
Returns:
    matthews_correlation (`float`): in [-1, 1]; 0 for a constant prediction.
"""


class MatthewsCorrelation(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            format="numpy",
        )

    def _compute(self, predictions: ArrayLike, references: ArrayLike) -> dict[str, float]:
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}

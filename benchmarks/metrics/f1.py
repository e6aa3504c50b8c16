"""F1 score (scikit-learn) as a local ``evaluate`` metric, with the averaging mode chosen per instance.

The output key names the mode ("f1" for binary, "f1_<average>" otherwise), so a task that reports binary and macro
F1 side by side gets two keys that do not overwrite each other when the metrics' outputs are merged.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
from numpy.typing import ArrayLike
from sklearn.metrics import f1_score

from .accuracy import _CITATION

_DESCRIPTION = "F1: the harmonic mean of precision and recall, averaged over classes as `average` says."
_INPUTS = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): gold class ids.
    average (`str`, optional): "binary" (F1 of class 1), "macro" (unweighted mean over classes) or "micro"
        (from global counts); defaults to the instance's `average`.
Returns:
    f1 (`float`), or f1_<average> (`float`) when `average` is not "binary": in [0, 1].
"""


class F1(evaluate.Metric):
    def __init__(self, average: str = "binary", **kwargs: Any) -> None:
        self.average = average
        super().__init__(**kwargs)

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            format="numpy",
        )

    def _compute(self, predictions: ArrayLike, references: ArrayLike, average: str | None = None) -> dict[str, float]:
        average = average or self.average
        key = "f1" if average == "binary" else f"f1_{average}"
        return {key: float(f1_score(references, predictions, average=average))}

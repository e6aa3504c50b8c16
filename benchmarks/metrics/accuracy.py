"""Accuracy (scikit-learn) as a local ``evaluate`` metric, so that scoring never needs the hub."""

from __future__ import annotations

import datasets
import evaluate
from numpy.typing import ArrayLike
from sklearn.metrics import accuracy_score

_DESCRIPTION = "Accuracy: the fraction of predictions equal to their reference label."
_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""
_INPUTS = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): gold class ids.
Returns:
    accuracy (`float`): in [0, 1].
"""


class Accuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            format="numpy",  # numpy arrays go to scikit-learn without a Python-list round trip
        )

    def _compute(self, predictions: ArrayLike, references: ArrayLike) -> dict[str, float]:
        return {"accuracy": float(accuracy_score(references, predictions))}

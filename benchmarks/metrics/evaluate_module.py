"""The metric table as ``evaluate`` metrics: one generic ``evaluate.Metric`` whose configuration is the metric name.

``evaluate.load("accuracy")`` downloads a metric script from the hub, so it fails offline; ``load("accuracy")`` here
gives the same interface (``compute``, ``add_batch``, ``evaluate.combine``) over the local table, like
``evaluate.load("glue", "sst2")`` picks one configuration of one module. The scoring path of the harness does not
come through here (see the package docstring); a value is the same either way, which tests/test_metrics.py checks.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from . import LABELS, SCORES, TAGS, MetricSpec, get_metric

_SKLEARN = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""
_SCIPY = """\
@article{2020SciPy-NMeth,
  author  = {Virtanen, Pauli and others},
  title   = {{SciPy} 1.0: Fundamental Algorithms for Scientific Computing in Python},
  journal = {Nature Methods},
  year    = {2020},
  volume  = {17},
  pages   = {261--272}
}
"""
_SEQEVAL = """\
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018}
}
"""
_CITATIONS = {"pearsonr": _SCIPY, "spearmanr": _SCIPY, "seqeval": _SEQEVAL, "token_accuracy": ""}
_INPUTS = {
    LABELS: "predictions, references (`list` of `int`): predicted and gold class ids.",
    SCORES: "predictions, references (`list` of `float`): predicted and gold scores.",
    TAGS: "predictions, references (`list` of `list` of `str`): predicted and gold tags, one list per sentence.",
}


def _features(inputs: str) -> datasets.Features:
    if inputs == TAGS:
        column: Any = datasets.List(datasets.Value("string"))
    else:
        column = datasets.Value("int64" if inputs == LABELS else "float64")
    return datasets.Features({"predictions": column, "references": column})


class TableMetric(evaluate.Metric):
    """One entry of the metric table (``config_name``: its name) as an ``evaluate.Metric``. Extra ``compute``
    arguments go to the function (``average="micro"`` for ``f1``)."""

    def __init__(self, config_name: str = "accuracy", **kwargs: Any) -> None:
        self.spec: MetricSpec = get_metric(config_name)
        super().__init__(config_name=self.spec.name, **kwargs)

    def _info(self) -> evaluate.MetricInfo:
        doc = self.spec.function.__doc__ or ""
        returns = ", ".join(self.spec.outputs)
        return evaluate.MetricInfo(
            description=doc.split("\n")[0], citation=_CITATIONS.get(self.spec.name, _SKLEARN),
            inputs_description=f"\nArgs:\n    {_INPUTS[self.spec.inputs]}\nReturns:\n    {returns} (`float`)\n",
            features=_features(self.spec.inputs),
            format=None if self.spec.inputs == TAGS else "numpy",  # arrays go to the back-end without a list round trip
        )

    def _compute(self, predictions: Any, references: Any, **options: Any) -> dict[str, float]:
        return self.spec.compute(predictions, references, **options)


# One instance per metric and process: building an evaluate.Metric creates a cache directory (milliseconds), and
# keep_in_memory=True keeps every compute off the disk (no Arrow cache file, no file lock).
_INSTANCES: dict[str, TableMetric] = {}


def load(name: str) -> TableMetric:
    """The process-wide ``evaluate`` metric ``name`` (case-insensitive); an unknown name raises ``ConfigError`` with
    a "did you mean" suggestion."""
    spec = get_metric(name)
    if spec.name not in _INSTANCES:
        _INSTANCES[spec.name] = TableMetric(spec.name, keep_in_memory=True)
    return _INSTANCES[spec.name]

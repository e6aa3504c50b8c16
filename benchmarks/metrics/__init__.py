"""The task metrics: one table ``name → (function, output keys, input kind)`` over scikit-learn, SciPy and seqeval.

Tasks name their metrics by these names (``metrics:`` in a task YAML); ``taskspec`` checks a task's ``primary``
against the output keys, and ``harness.run.evaluation`` scores through :func:`compute_metrics`. The same entries are
available as ``evaluate`` metrics (``load_metric``, see ``evaluate_module.py``) for code that wants that interface.

Why plain functions on the scoring path rather than ``evaluate.Metric`` objects: importing ``evaluate`` imports
transformers' pipelines, and every ``compute`` builds an Arrow table; neither changes a value (inputs are cast
to the dtypes the replaced ``evaluate`` modules gave their back-ends, see ``_cast``), and both cost start-up and
evaluation time (results/perf/startup.md). The back-ends are imported inside the functions for the same reason:
``taskspec`` reads this table for ``regbench ls tasks``, which must not load scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from regbench.harness.core.registry import Registry

if TYPE_CHECKING:
    from .evaluate_module import TableMetric

__all__ = ["METRICS", "METRIC_NAMES", "METRIC_OUTPUTS", "MetricSpec", "compute_metrics", "get_metric", "load_metric"]

# Input kinds: what a metric's predictions and references are, and the dtype both are cast to before scoring.
LABELS = "labels"  # class ids → int64 arrays
SCORES = "scores"  # regression scores → float32 arrays (see _cast)
TAGS = "tags"  # one list of tag strings per sentence, passed as they are


@dataclass(frozen=True)
class MetricSpec:
    name: str
    function: Callable[..., dict[str, float]]  # (predictions, references, **options) → {key: float}
    outputs: tuple[str, ...]  # the keys it always returns (seqeval adds f1_<TYPE> per entity type)
    inputs: str  # LABELS, SCORES or TAGS

    def compute(self, predictions: Any, references: Any, **options: Any) -> dict[str, float]:
        return self.function(*_cast(self.inputs, predictions, references), **options)


def _cast(inputs: str, *columns: Any) -> list[Any]:
    # The arrays the evaluate.Metric modules that this table replaced gave their back-ends, so that every score
    # stays bit-identical to the records made with them: their numpy output format (datasets' NumpyFormatter) cast
    # integers to int64 and floats to float32, so correlations are computed, and come out, in float32 precision.
    dtype = {LABELS: np.int64, SCORES: np.float32}.get(inputs)
    return [np.asarray(column, dtype=dtype) if dtype is not None else column for column in columns]


def accuracy(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Accuracy: the fraction of predictions equal to their reference label."""
    from sklearn.metrics import accuracy_score

    return {"accuracy": float(accuracy_score(references, predictions))}


def f1(predictions: np.ndarray, references: np.ndarray, average: str = "binary") -> dict[str, float]:
    """F1: harmonic mean of precision and recall; "binary" (class 1), "macro" or "micro" averaging.

    The key names the mode ("f1" for binary, "f1_<average>" otherwise), so binary and macro F1 of one task do not
    overwrite each other when outputs are merged."""
    from sklearn.metrics import f1_score

    key = "f1" if average == "binary" else f"f1_{average}"
    return {key: float(f1_score(references, predictions, average=average))}


def matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Matthews correlation in [-1, 1]; a constant prediction scores 0 (the majority-class baseline's score)."""
    from sklearn.metrics import matthews_corrcoef

    return {"matthews_correlation": float(matthews_corrcoef(references, predictions))}


def pearsonr(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Pearson correlation; NaN for a constant prediction, which the harness counts as a failed run."""
    from scipy import stats

    return {"pearson": _statistic(stats.pearsonr, references, predictions)}


def spearmanr(predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """Spearman rank correlation; NaN for a constant prediction."""
    from scipy import stats

    return {"spearmanr": _statistic(stats.spearmanr, references, predictions)}


def _statistic(test: Callable[..., Any], x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import ConstantInputWarning

    # The NaN already says "constant input"; SciPy's warning would repeat at every evaluation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(test(x, y).statistic)


def seqeval(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Entity-level micro precision, recall and F1 over IOB2 tags (seqeval's default, conlleval-compatible
    matching), token accuracy, and f1_<TYPE> per entity type found on either side. ``zero_division=0``: the
    undefined cases (no entities, e.g. the all-"O" baseline) score 0 as seqeval's default does, without its warning."""
    from seqeval.metrics.sequence_labeling import (
        accuracy_score,
        get_entities,
        precision_recall_fscore_support,
    )

    precision, recall, f1_, _ = precision_recall_fscore_support(
        references, predictions, average="micro", zero_division=0
    )
    scores = {"precision": float(precision), "recall": float(recall), "f1": float(f1_),
              "accuracy": float(accuracy_score(references, predictions))}
    # seqeval orders its per-type scores by sorted type name over both sides.
    types = sorted({entity[0] for tags in (references, predictions) for entity in get_entities(tags)})
    _, _, per_type_f1, _ = precision_recall_fscore_support(references, predictions, average=None, zero_division=0)
    scores.update({f"f1_{name}": float(value) for name, value in zip(types, per_type_f1, strict=True)})
    return scores


def token_accuracy(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    """Correct tags over all labelled tokens, pooled over sentences (POS tagging: every tag is a class, no IOB2
    chunks); 0 when there are no tokens."""
    pairs = [(p, r) for pred, ref in zip(predictions, references, strict=True) for p, r in zip(pred, ref, strict=True)]
    correct = sum(p == r for p, r in pairs)
    return {"token_accuracy": correct / len(pairs) if pairs else 0.0}


METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in (
    MetricSpec("accuracy", accuracy, ("accuracy",), LABELS),
    MetricSpec("f1", f1, ("f1",), LABELS),
    MetricSpec("f1_macro", partial(f1, average="macro"), ("f1_macro",), LABELS),
    MetricSpec("matthews_correlation", matthews_correlation, ("matthews_correlation",), LABELS),
    MetricSpec("pearsonr", pearsonr, ("pearson",), SCORES),
    MetricSpec("spearmanr", spearmanr, ("spearmanr",), SCORES),
    MetricSpec("seqeval", seqeval, ("precision", "recall", "f1", "accuracy"), TAGS),
    MetricSpec("token_accuracy", token_accuracy, ("token_accuracy",), TAGS),
)}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)
METRIC_OUTPUTS: dict[str, tuple[str, ...]] = {name: spec.outputs for name, spec in METRICS.items()}

_REGISTRY: Registry[MetricSpec] = Registry("metric")
for _spec in METRICS.values():
    _REGISTRY.register(_spec.name, _spec)


def get_metric(name: str) -> MetricSpec:
    """The table entry of metric ``name`` (case-insensitive); an unknown name raises ``ConfigError`` with a
    "did you mean" suggestion."""
    return _REGISTRY.get(name)


def compute_metrics(names: Sequence[str], predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """Every named metric on the same predictions, merged into one flat ``{key: float}`` dict."""
    results: dict[str, float] = {}
    for name in names:
        results.update(get_metric(name).compute(predictions, references))
    return results


def load_metric(name: str) -> TableMetric:
    """Metric ``name`` as an ``evaluate.Metric`` (one process-wide instance per metric); imports ``evaluate``."""
    from .evaluate_module import load

    return load(name)

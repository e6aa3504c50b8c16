"""Local ``evaluate`` metrics: the task metrics without the Hugging Face hub.

``evaluate.load`` with a hub metric name (accuracy, f1, …) downloads a metric script, so it fails offline; these modules are the same
metrics as local ``evaluate.Metric`` classes backed by scikit-learn, SciPy and seqeval. Each metric is built once per
process and reused, because ``evaluate.Metric.__init__`` creates a cache directory; ``keep_in_memory=True`` keeps
each ``compute`` call off the disk (no Arrow cache file, no file lock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import evaluate

from regbench.harness.registry import Registry

from .accuracy import Accuracy
from .f1 import F1
from .matthews_correlation import MatthewsCorrelation
from .pearsonr import Pearsonr
from .seqeval import Seqeval
from .spearmanr import Spearmanr
from .token_accuracy import TokenAccuracy

__all__ = ["METRIC_NAMES", "compute_metrics", "load_metric"]

_FACTORIES: dict[str, Callable[..., evaluate.Metric]] = {
    "accuracy": Accuracy,
    "f1": F1,
    "f1_macro": partial(F1, average="macro"),
    "matthews_correlation": MatthewsCorrelation,
    "pearsonr": Pearsonr,
    "spearmanr": Spearmanr,
    "seqeval": Seqeval,
    "token_accuracy": TokenAccuracy,
}
METRIC_NAMES: tuple[str, ...] = tuple(_FACTORIES)

_REGISTRY: Registry[Callable[..., evaluate.Metric]] = Registry("metric")
for _name, _factory in _FACTORIES.items():
    _REGISTRY.register(_name, _factory)

# Keyed by factory, not by the name as typed: the registry's lookup is case-insensitive, "F1" and "f1" share one.
_INSTANCES: dict[Callable[..., evaluate.Metric], evaluate.Metric] = {}


def load_metric(name: str) -> evaluate.Metric:
    """The process-wide instance of metric ``name``; an unknown name raises ``ConfigError`` with a suggestion."""
    factory = _REGISTRY.get(name)
    if factory not in _INSTANCES:
        _INSTANCES[factory] = factory(keep_in_memory=True)
    return _INSTANCES[factory]


def compute_metrics(names: Sequence[str], predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    """Every named metric on the same predictions, merged into one flat ``{key: float}`` dict."""
    results: dict[str, float] = {}
    for name in names:
        results.update(load_metric(name).compute(predictions=predictions, references=references))
    return results

"""Evaluation: predictions of a model over a split, scored with the task's metrics.

The *primary* score is the mean of the task's primary metric keys (e.g. Pearson and Spearman for STS-B); it is what
epoch selection, tuning and ranking use. A final run "fails" when its test primary score is no better than the
constant majority-class predictor's on the same clean test set (regression: a correlation that is NaN or ≤ 0; token
tasks: predicting "O" everywhere, F1 = 0); suite version 1 judged it on the (noisy) dev set.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from regbench.benchmarks.metrics import compute_metrics

from .model import TaskModel


@dataclass
class EvalResult:
    metrics: dict[str, float]  # every metric key, plus "primary"
    ids: list[int]
    predictions: list[Any]  # label ids, floats, or (token tasks) tag ids of the labelled positions
    references: list[Any] = field(default_factory=list)  # the gold labels, same order (records keep them: the
    # leaderboard's bootstrap over test examples recomputes the metric from predictions and references)


def primary_score(task: Any, metrics: dict[str, float]) -> float:
    values = [metrics.get(key, float("nan")) for key in task.primary]
    return float(sum(values) / len(values))


def score(task: Any, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
    if task.is_token_task:
        names = task.label_names
        predictions = [[names[t] for t in seq] for seq in predictions]
        references = [[names[t] for t in seq] for seq in references]
    metrics = compute_metrics(task.metrics, predictions, references)
    metrics["primary"] = primary_score(task, metrics)
    return metrics


@torch.inference_mode()
def predict(
    model: TaskModel, batches: Iterable[dict[str, torch.Tensor]], autocast: Any
) -> tuple[list[int], list[Any], list[Any]]:
    """Run the model over batches; returns (ids, predictions, references) in batch order."""
    was_training = model.training
    model.eval()
    ids: list[int] = []
    preds: list[Any] = []
    refs: list[Any] = []
    for batch in batches:
        with autocast():
            logits = model(**batch).logits.float()
        labels = batch["labels"]
        ids.extend(batch["idx"].tolist())
        if model.task_type == "regression":
            preds.extend(logits.tolist())
            refs.extend(labels.tolist())
        elif model.task_type == "token_classification":
            best = logits.argmax(-1)
            for row_pred, row_label in zip(best, labels, strict=True):
                keep = row_label != -100
                preds.append(row_pred[keep].tolist())
                refs.append(row_label[keep].tolist())
        else:
            preds.extend(logits.argmax(-1).tolist())
            refs.extend(labels.tolist())
    model.train(was_training)
    return ids, preds, refs


def evaluate_model(
    model: TaskModel, task: Any, batches: Iterable[dict[str, torch.Tensor]], autocast: Any
) -> EvalResult:
    ids, preds, refs = predict(model, batches, autocast)
    order = sorted(range(len(ids)), key=ids.__getitem__)  # batches may be length-sorted: restore split order
    ids, preds, refs = ([seq[i] for i in order] for seq in (ids, preds, refs))
    return EvalResult(score(task, preds, refs), ids, preds, refs)


def majority_baseline(task: Any, references: Sequence[Any]) -> float:
    """Primary score of the constant predictor (most frequent class; "O" for tokens; NaN-free 0 for regression)."""
    if task.is_regression:
        return 0.0  # a constant has no correlation with the labels
    if task.is_token_task:
        return score(task, [[0] * len(seq) for seq in references], references)["primary"]
    majority = Counter(references).most_common(1)[0][0]
    return score(task, [majority] * len(references), references)["primary"]


def is_failed(task: Any, score: float, baseline: float) -> bool:
    return math.isnan(score) or score <= baseline

"""Representation-collapse metrics: how far fine-tuning moved, and narrowed, the encoder's sentence representations.

Definitions (DESIGN.md, "Collapse metrics"; REPINA's exact ones were not recovered, so these are ours):

- **Linear CKA** (Kornblith et al. 2019) between the pretrained and the fine-tuned encoder's representations of the
  same fixed probe set: with column-centred X, Y (n × d), ``||YᵀX||²_F / (||XᵀX||_F · ||YᵀY||_F)``. 1 = the
  same representation up to an orthogonal transform and isotropic scaling; lower = the fine-tuned geometry moved away.
- **Effective rank** (Roy & Vetterli 2007) of the column-centred representation matrix: ``exp(H(p))`` with
  ``p = σ / Σσ`` over its singular values. A matrix with r equal non-zero singular values has effective rank r.
  Centring is our choice: the mean vector is one shared direction that says nothing about spread.
- **Top-k explained variance**: the share of the total variance (Σσ²) on the k largest principal directions
  (k = 1 and 10 by default). Collapse shows up as a lower effective rank and a higher top-k share.
- **Probe transfer**: freeze the encoder, fit a logistic regression (scikit-learn, L2, C = 1, features
  standardised on the probe's training part) on another task's few-shot split and report its test accuracy for the
  fine-tuned and for the pretrained encoder; ``probe_transfer_delta`` = fine-tuned − pretrained (below 0: the
  fine-tuned representation lost information the other task needs). Which task and split: ``harness/post/extras.py``.

Sentence representations come straight from the encoder with the model's pooling (mean / cls / pooler), whatever
the task head: a token-classification model is mean-pooled like a sentence model, and multiple-choice inputs
(B, K, T) are flattened, one representation per (context, choice) pair. Metrics and the probe run in float64 NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..run.model import TaskModel

DEFAULT_TOP_K = (1, 10)


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0, keepdims=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n examples (n × d₁ and n × d₂); NaN if either is constant."""
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same examples on both sides, got {len(x)} and {len(y)} rows")
    x, y = _centre(x), _centre(y)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    norms = np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")
    return float(cross / norms) if norms > 0 else float("nan")


def _singular_values(x: np.ndarray, centre: bool) -> np.ndarray:
    matrix = _centre(x) if centre else np.asarray(x, dtype=np.float64)
    return np.linalg.svd(matrix, compute_uv=False)


def effective_rank(x: np.ndarray, centre: bool = True) -> float:
    """``exp`` of the entropy of the normalised singular values (Roy & Vetterli 2007); 0 for an all-zero matrix."""
    sigma = _singular_values(x, centre)
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def explained_variance(x: np.ndarray, k: int, centre: bool = True) -> float:
    """Share of the total variance on the top-k principal directions (1.0 when k ≥ the rank)."""
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    var = _singular_values(x, centre) ** 2
    total = var.sum()
    return float(var[:k].sum() / total) if total > 0 else float("nan")


def probe_accuracy(train_x: np.ndarray, train_y: Sequence[int], test_x: np.ndarray, test_y: Sequence[int],
                   seed: int = 0) -> float:
    """Test accuracy of a logistic-regression probe on frozen features (standardised on the training part)."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
    probe.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float((probe.predict(np.asarray(test_x, dtype=np.float64)) == np.asarray(test_y)).mean())


@torch.inference_mode()
def sentence_representations(model: TaskModel, batches: Iterable[dict[str, torch.Tensor]]) -> np.ndarray:
    """Pooled encoder outputs (n × hidden), in batch order, with dropout off."""
    was_training = model.training
    model.eval()
    rows = []
    for batch in batches:
        rows.append(_pool(model, batch).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(rows).astype(np.float64) if rows else np.zeros((0, model.encoder.config.hidden_size))


def _pool(model: TaskModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    if inputs["input_ids"].dim() == 3:  # multiple choice: one sentence per (context, choice) pair
        inputs = {k: v.flatten(0, 1) for k, v in inputs.items()}
    out = model.encoder(**inputs)
    if model.pooling == "cls":
        return out.last_hidden_state[:, 0]
    if model.pooling == "pooler" and out.pooler_output is not None:
        return out.pooler_output
    mask = inputs["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
    return (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@dataclass
class TransferSet:
    """Another task's few-shot split for the probe: batches (any order) and their labels in the same order."""

    task: str
    train_batches: list[dict[str, torch.Tensor]]
    train_labels: list[int]
    test_batches: list[dict[str, torch.Tensor]]
    test_labels: list[int]


def representation_metrics(x: np.ndarray, prefix: str = "", top_k: Sequence[int] = DEFAULT_TOP_K) -> dict[str, float]:
    metrics = {f"{prefix}effective_rank": effective_rank(x)}
    metrics.update({f"{prefix}explained_variance_top{k}": explained_variance(x, k) for k in top_k})
    return metrics


@dataclass(frozen=True)
class PretrainedReference:
    """What the pretrained encoder contributes to a task's collapse metrics: its probe-set representations and its
    probe-transfer accuracy. It depends only on the checkpoint, the task and the probe settings — never on the run —
    so a process computes it once per task and every run pays only for its fine-tuned encoder."""

    representations: np.ndarray
    transfer_accuracy: float | None


def pretrained_reference(pretrained_model: TaskModel, probe_batches: Sequence[dict[str, torch.Tensor]],
                         transfer: TransferSet | None = None) -> PretrainedReference:
    start = sentence_representations(pretrained_model, probe_batches)
    return PretrainedReference(start, _transfer_accuracy(pretrained_model, transfer) if transfer else None)


def _transfer_accuracy(encoder: TaskModel, transfer: TransferSet) -> float:
    train_x = sentence_representations(encoder, transfer.train_batches)
    test_x = sentence_representations(encoder, transfer.test_batches)
    return probe_accuracy(train_x, transfer.train_labels, test_x, transfer.test_labels)


def collapse_metrics(model: TaskModel, reference: PretrainedReference | TaskModel,
                     probe_batches: Sequence[dict[str, torch.Tensor]], transfer: TransferSet | None = None,
                     top_k: Sequence[int] = DEFAULT_TOP_K) -> dict[str, float]:
    """All collapse metrics of a fine-tuned model against its pretrained starting point (the pretrained model, or its
    :class:`PretrainedReference` computed once for the same probe batches and transfer set).

    Keys: ``cka``, ``probe_rows`` (representations compared); ``effective_rank`` and ``explained_variance_top{k}``
    of both encoders (``pretrained_…`` for the starting point, so a collapse is read as the difference); with
    ``transfer``: ``probe_transfer_finetuned``,
    ``probe_transfer_pretrained`` and ``probe_transfer_delta``."""
    if not isinstance(reference, PretrainedReference):
        reference = pretrained_reference(reference, probe_batches, transfer)
    tuned = sentence_representations(model, probe_batches)
    start = reference.representations
    metrics = {"cka": linear_cka(start, tuned), "probe_rows": float(len(tuned))}
    metrics.update(representation_metrics(tuned, "", top_k))
    metrics.update(representation_metrics(start, "pretrained_", top_k))
    if transfer is not None:
        pretrained = reference.transfer_accuracy
        if pretrained is None:
            raise ValueError("the pretrained reference was computed without this transfer set")
        finetuned = _transfer_accuracy(model, transfer)
        metrics.update({"probe_transfer_finetuned": finetuned, "probe_transfer_pretrained": pretrained,
                        "probe_transfer_delta": finetuned - pretrained})
    return metrics

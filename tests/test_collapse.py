"""Collapse metrics on synthetic representations with known answers, and the entry point on the tiny model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from regbench.benchmarks.data import encode_split
from regbench.benchmarks.taskspec import get_task
from regbench.harness.post import extras
from regbench.harness.post.collapse import (
    TransferSet,
    collapse_metrics,
    effective_rank,
    explained_variance,
    linear_cka,
    pretrained_reference,
    probe_accuracy,
)
from regbench.harness.run import batching
from regbench.harness.run.model import TaskModel, load_pretrained

RNG = np.random.default_rng(0)
X = RNG.normal(size=(200, 16))


def _with_spectrum(singular_values: list[float], n: int = 100, seed: int = 1) -> np.ndarray:
    """An n × d matrix with zero column means and exactly these singular values."""
    d = len(singular_values)
    left = ortho_group.rvs(n, random_state=seed)[:, 1:d + 1]  # orthonormal columns ⟂ the first one …
    ones = np.ones((n, 1)) / np.sqrt(n)
    left -= ones @ (ones.T @ left)  # … and ⟂ the constant vector, so centring leaves the matrix as it is
    left, _ = np.linalg.qr(left)
    return left @ np.diag(singular_values) @ ortho_group.rvs(d, random_state=seed + 1)


def test_cka_of_a_matrix_with_itself_is_one():
    assert linear_cka(X, X) == pytest.approx(1.0)


def test_cka_is_invariant_to_orthogonal_transforms_isotropic_scaling_and_shifts():
    q = ortho_group.rvs(16, random_state=3)
    assert linear_cka(X, 3.5 * X @ q + 7.0) == pytest.approx(1.0)


def test_cka_is_not_invariant_to_anisotropic_scaling_and_is_low_for_independent_data():
    stretched = X * np.r_[np.full(8, 10.0), np.full(8, 0.1)]
    assert 0.2 < linear_cka(X, stretched) < 0.9
    assert linear_cka(X, RNG.normal(size=(200, 16))) < 0.2


def test_cka_needs_the_same_examples():
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(X, X[:10])


@pytest.mark.parametrize("rank", [1, 3, 7])
def test_effective_rank_of_a_rank_r_matrix_with_equal_singular_values_is_r(rank):
    assert effective_rank(_with_spectrum([2.0] * rank)) == pytest.approx(rank)


def test_effective_rank_of_an_unequal_spectrum_follows_the_entropy():
    sigma = np.array([4.0, 2.0, 1.0, 1.0])
    p = sigma / sigma.sum()
    assert effective_rank(_with_spectrum(list(sigma))) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert effective_rank(np.zeros((5, 3))) == 0.0


def test_explained_variance_of_a_known_spectrum():
    m = _with_spectrum([3.0, 2.0, 1.0, 1.0, 1.0])  # variances 9, 4, 1, 1, 1 → total 16
    assert explained_variance(m, 1) == pytest.approx(9 / 16)
    assert explained_variance(m, 2) == pytest.approx(13 / 16)
    assert explained_variance(m, 10) == pytest.approx(1.0)


def test_probe_accuracy_separates_separable_classes_and_not_noise():
    labels = np.arange(80) % 2
    separable = RNG.normal(size=(80, 4)) + labels[:, None] * 5.0
    assert probe_accuracy(separable[:40], labels[:40], separable[40:], labels[40:]) == 1.0
    noise = RNG.normal(size=(80, 4))
    assert probe_accuracy(noise[:40], labels[:40], noise[40:], labels[40:]) < 0.8


def _batches(task: str, split: str, n: int) -> list[dict[str, torch.Tensor]]:
    tokenizer = load_pretrained("tiny-random-bert").tokenizer
    features = encode_split(get_task(task), split, tokenizer, 32).features[:n]
    order = batching.eval_order([len(f["input_ids"]) for f in features], 8)
    return list(batching.iterate(features, order, tokenizer.pad_token_id, torch.device("cpu")))


def test_collapse_metrics_entry_point_on_the_tiny_model(data_dir):
    pretrained = load_pretrained("tiny-random-bert")
    start = TaskModel(pretrained, "classification", 2)
    same = TaskModel(pretrained, "classification", 2)
    moved = TaskModel(pretrained, "classification", 2)
    with torch.no_grad():  # a stand-in for a fine-tuned encoder that moved far: noise on every transformer weight
        generator = torch.Generator().manual_seed(0)
        for param in moved.encoder.encoder.parameters():
            param.add_(torch.randn(param.shape, generator=generator))
    probe = _batches("sst2", "test", 48)
    train, test = _batches("trec", "train", 32), _batches("trec", "test", 24)
    transfer = TransferSet("trec", train, [int(y) for b in train for y in b["labels"]], test,
                           [int(y) for b in test for y in b["labels"]])
    unchanged = collapse_metrics(same, start, probe, transfer)
    assert unchanged["cka"] == pytest.approx(1.0)
    assert unchanged["probe_rows"] == 48
    assert unchanged["effective_rank"] == pytest.approx(unchanged["pretrained_effective_rank"])
    assert unchanged["probe_transfer_delta"] == 0.0
    changed = collapse_metrics(moved, start, probe)
    assert changed["cka"] < 0.9
    assert "probe_transfer_delta" not in changed
    assert 1.0 <= changed["effective_rank"] <= 32 and 0 < changed["explained_variance_top1"] < 1


def test_multiple_choice_inputs_give_one_representation_per_choice(data_dir):
    pretrained = load_pretrained("tiny-random-bert")
    model = TaskModel(pretrained, "multiple_choice", 2)
    metrics = collapse_metrics(model, TaskModel(pretrained, "multiple_choice", 2), _batches("copa", "test", 10))
    assert metrics["probe_rows"] == 20 and metrics["cka"] == pytest.approx(1.0)


def test_a_cached_pretrained_reference_gives_the_same_metrics_as_the_pretrained_model(data_dir):
    pretrained = load_pretrained("tiny-random-bert")
    start, moved = TaskModel(pretrained, "classification", 2), TaskModel(pretrained, "classification", 2)
    with torch.no_grad():
        for param in moved.encoder.encoder.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=torch.Generator().manual_seed(1)))
    probe = _batches("sst2", "test", 32)
    train, test = _batches("trec", "train", 32), _batches("trec", "test", 24)
    transfer = TransferSet("trec", train, [int(y) for b in train for y in b["labels"]], test,
                           [int(y) for b in test for y in b["labels"]])
    reference = pretrained_reference(start, probe, transfer)
    assert collapse_metrics(moved, reference, probe, transfer) == collapse_metrics(moved, start, probe, transfer)


def test_post_train_collapse_computes_the_pretrained_side_once_per_task_and_process(data_dir, monkeypatch):
    pretrained = load_pretrained("tiny-random-bert")
    config = SimpleNamespace(evaluate_test=True, ood=False, collapse=True, max_length=32, max_test_examples=40,
                             data_dir=data_dir, train=SimpleNamespace(eval_batch_size=16, precision="fp32"))
    task = get_task("sst2")
    calls = []
    real = extras.pretrained_reference
    monkeypatch.setattr(extras, "pretrained_reference", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(extras, "_TASK_PROBES", {})
    model = TaskModel(pretrained, task.type, task.num_labels)
    first = extras.post_train_metrics(model, task, pretrained, config, {"train": [], "dev": []})
    second = extras.post_train_metrics(model, task, pretrained, config, {"train": [], "dev": []})
    assert len(calls) == 1 and first == second
    assert first["collapse"]["metrics"]["cka"] == pytest.approx(1.0)  # an untouched model: same representations
    assert first["collapse"]["settings"]["probe_examples"] == 40 and first["collapse"]["settings"]["transfer_task"]
    monkeypatch.setattr(extras, "_TASK_PROBES", {})  # a fresh process: the same numbers, computed again
    assert extras.post_train_metrics(model, task, pretrained, config, {"train": [], "dev": []}) == first
    assert len(calls) == 2

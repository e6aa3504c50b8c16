"""Few-shot sizes (k per class / n in total) and label noise: stratified, disjoint, reproducible, test untouched."""

from __future__ import annotations

import collections
import dataclasses

import pytest

from regbench.benchmarks.fewshot import check_size_fits, parse_size, plan_per_class
from regbench.benchmarks.noise import NoiseSpec, apply_noise, flip_map
from regbench.benchmarks.taskspec import get_task
from regbench.harness.api import derive_seeds, prepare_data
from regbench.harness.core.errors import ConfigError, DataError
from regbench.harness.run.model import load_pretrained


@pytest.mark.parametrize(("text", "label"), [("k16", "k16"), ("k=16", "k16"), ("n500", "n500"), ("500", "n500"),
                                             (64, "n64"), ("full", "full"), (None, "full")])
def test_size_labels(text, label):
    assert parse_size(text).label == label


@pytest.mark.parametrize("bad", ["k0", "x16", "k-1", "16k", ""])
def test_bad_size_is_one_clear_error(bad):
    with pytest.raises(DataError, match="k16"):
        parse_size(bad)


def test_per_class_split_is_stratified_disjoint_and_reproducible():
    task = get_task("sst2")
    labels = [0] * 100 + [1] * 60
    plan = plan_per_class(task, labels, 16, seed=3)
    assert collections.Counter(labels[i] for i in plan.train) == {0: 16, 1: 16}
    assert collections.Counter(labels[i] for i in plan.dev) == {0: 16, 1: 16}
    assert not set(plan.train) & set(plan.dev)
    assert plan == plan_per_class(task, labels, 16, seed=3)
    assert plan != plan_per_class(task, labels, 16, seed=4)


def test_k_larger_than_smallest_class_is_explained():
    task = get_task("sst2")
    labels = [0] * 100 + [1] * 20
    assert "smallest class has 20" in check_size_fits(task, labels, parse_size("k16"))
    with pytest.raises(DataError, match="smaller k"):
        plan_per_class(task, labels, 16, seed=1)
    assert "classification" in check_size_fits(get_task("stsb"), [0.5] * 100, parse_size("k4"))


def _features(labels):
    return [{"idx": i, "input_ids": [101, 102], "attention_mask": [1, 1], "labels": y} for i, y in enumerate(labels)]


def test_symmetric_noise_flips_exactly_the_rate_to_other_classes():
    task = get_task("trec")
    labels = [i % task.num_labels for i in range(200)]
    noisy, info = apply_noise(task, _features(labels), NoiseSpec(0.2), seed=5)
    flipped = [i for i, f in enumerate(noisy) if f["labels"] != labels[i]]
    assert len(flipped) == 40 and info["realised_rate"] == pytest.approx(0.2) and info["changed"] == 40
    assert all(0 <= f["labels"] < task.num_labels for f in noisy)
    again, info2 = apply_noise(task, _features(labels), NoiseSpec(0.2), seed=5)
    assert [f["labels"] for f in again] == [f["labels"] for f in noisy]
    assert info2["flipped_sha256"] == info["flipped_sha256"]
    assert apply_noise(task, _features(labels), NoiseSpec(0.2), seed=6)[1]["flipped_sha256"] != info["flipped_sha256"]


def test_asymmetric_noise_follows_the_flip_map():
    task = dataclasses.replace(get_task("sst2"), extra={"noise": {"flip_map": {0: 1}}})
    labels = [0] * 50 + [1] * 50
    noisy, info = apply_noise(task, _features(labels), NoiseSpec(0.4, "asymmetric"), seed=1)
    assert sum(f["labels"] == 1 for f in noisy[:50]) == 20 and all(f["labels"] == 1 for f in noisy[50:])
    assert info["realised_rate"] == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="flip_map"):
        flip_map(get_task("sst2"))


def test_token_noise_changes_whole_spans_and_keeps_iob_valid():
    task = get_task("conll2003")
    names = task.label_names
    tag = {n: i for i, n in enumerate(names)}
    row = [-100, tag["B-PER"], tag["I-PER"], -100, tag["I-PER"], tag["O"], tag["B-LOC"], -100]
    feats = [{"idx": i, "input_ids": [1] * 8, "attention_mask": [1] * 8, "labels": list(row)} for i in range(50)]
    noisy, info = apply_noise(task, feats, NoiseSpec(0.5), seed=2)
    assert info["unit"] == "spans" and info["realised_rate"] == pytest.approx(0.5)
    for f in noisy:
        tags = [names[t] if t != -100 else None for t in f["labels"]]
        per = {t.split("-")[1] for t in (tags[1], tags[2], tags[4])}
        assert len(per) == 1 and tags[1].startswith("B-") and tags[2].startswith("I-")  # one span, one type
        assert tags[5] == "O" and f["labels"][0] == -100 and f["labels"][7] == -100


def test_regression_noise_scales_with_label_std():
    task = get_task("stsb")
    labels = [float(i % 6) for i in range(2000)]
    noisy, info = apply_noise(task, _features(labels), NoiseSpec(0.3), seed=0)
    assert info["type"] == "gaussian" and info["realised_rate"] == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_noise_rate_outside_unit_interval_is_rejected(rate):
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        NoiseSpec(rate).validate()


def test_two_methods_with_one_seed_see_the_same_split_and_noise_and_a_clean_test(tiny_config):
    tokenizer = load_pretrained("tiny-random-bert").tokenizer
    task = get_task("sst2")
    seeds = derive_seeds(7)
    datasets = [prepare_data(task, tiny_config(method=m, train_size="k8", noise_rate=0.25), tokenizer,
                             seeds["data"], seeds["noise"]) for m in ("std", "std++")]
    (a, info_a), (b, info_b) = datasets
    assert [(f["idx"], f["labels"]) for f in a["train"]] == [(f["idx"], f["labels"]) for f in b["train"]]
    assert [(f["idx"], f["labels"]) for f in a["dev"]] == [(f["idx"], f["labels"]) for f in b["dev"]]
    assert info_a["noise_train"] == info_b["noise_train"] and info_a["noise_train"]["changed"] == 4
    clean, _ = prepare_data(task, tiny_config(train_size="k8"), tokenizer, seeds["data"], seeds["noise"])
    assert [f["labels"] for f in clean["test"]] == [f["labels"] for f in a["test"]]
    assert [f["idx"] for f in clean["train"]] == [f["idx"] for f in a["train"]]

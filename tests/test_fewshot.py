from __future__ import annotations

from collections import Counter

import pytest

from regbench.benchmarks.fewshot import plan_split, stratified_subsample
from regbench.benchmarks.taskspec import get_task
from regbench.harness.core.errors import DataError

LABELS = [0] * 600 + [1] * 400


def test_train_and_dev_are_disjoint_stratified_and_sized():
    plan = plan_split(get_task("sst2"), LABELS, 50, None, seed=3)
    assert len(plan.train) == 50 and len(plan.dev) == 50
    assert not set(plan.train) & set(plan.dev)
    assert Counter(LABELS[i] for i in plan.train) == {0: 30, 1: 20}


def test_same_seed_same_split_and_other_seed_differs():
    task = get_task("sst2")
    assert plan_split(task, LABELS, 20, 10, seed=1) == plan_split(task, LABELS, 20, 10, seed=1)
    assert plan_split(task, LABELS, 20, 10, seed=1) != plan_split(task, LABELS, 20, 10, seed=2)


def test_full_uses_the_pool_minus_dev():
    plan = plan_split(get_task("sst2"), LABELS, None, None, seed=0)
    assert len(plan.dev) == 100 and len(plan.train) == 900


def test_too_large_train_size_names_the_limit():
    with pytest.raises(DataError, match=r"use 1\.\.500"):
        plan_split(get_task("sst2"), LABELS, 501, 500, seed=0)


def test_subsample_is_fixed_and_sized():
    task = get_task("sst2")
    chosen = stratified_subsample(task, LABELS, 100)
    assert len(chosen) == 100 and chosen == stratified_subsample(task, LABELS, 100)
    assert Counter(LABELS[i] for i in chosen) == {0: 60, 1: 40}

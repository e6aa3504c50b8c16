"""Drawing the training and dev sets of a run from a task's training pool.

The dev set (model selection: best epoch, tuning) is carved from the training pool, disjoint from the training
examples, because the task's own validation split serves as the test set (GLUE convention). Classification draws
are stratified (class proportions kept), regression and token tasks draw uniformly. The draw depends only on the
data seed, so every method sees the same split for the same seed — the paired tests rely on it.

Sizes (:class:`SizeSpec`, written ``k16``, ``n500`` or ``full``): ``k`` examples *per class* (LM-BFF style: train and
dev both get k per class, disjoint; classification only), ``n`` examples in total (stratified for classification),
or ``full`` = the whole pool minus the dev set. Default dev size: the training size for few-shot draws, else 10% of
the pool capped at 2000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from regbench.harness.core.errors import DataError

from .taskspec import TaskSpec

MAX_FULL_DEV = 2000


@dataclass(frozen=True)
class SplitPlan:
    train: list[int]  # positions in the pool
    dev: list[int]


@dataclass(frozen=True)
class SizeSpec:
    """A training-set size: ``per_class`` examples of each class, or ``total`` examples, or neither (= full)."""

    per_class: int | None = None
    total: int | None = None

    @property
    def label(self) -> str:
        return f"k{self.per_class}" if self.per_class else f"n{self.total}" if self.total else "full"

    def __str__(self) -> str:
        return self.label


_SIZE = re.compile(r"^(?:(?P<kind>[kn])\s*=?\s*)?(?P<value>\d+)$")


def parse_size(value: Any) -> SizeSpec:
    """``16`` / ``"n16"`` / ``"n=16"`` → 16 in total; ``"k16"`` / ``"k=16"`` → 16 per class; ``"full"``/None → all."""
    if isinstance(value, SizeSpec):
        return value
    if value is None or (isinstance(value, str) and value.strip().lower() == "full"):
        return SizeSpec()
    if isinstance(value, int) and not isinstance(value, bool):
        number, kind = value, "n"
    else:
        match = _SIZE.match(str(value).strip().lower())
        if not match:
            raise DataError(f"size {value!r} is not understood; write k16 (per class), n500 (in total) or full")
        number, kind = int(match["value"]), match["kind"] or "n"
    if number < 1:
        raise DataError(f"size {value!r} must be at least 1 example (e.g. k16, n500 or full)")
    return SizeSpec(per_class=number) if kind == "k" else SizeSpec(total=number)


def check_size_fits(task: TaskSpec, labels: list, size: SizeSpec, dev_size: int | None = None) -> str | None:
    """Why this task cannot serve this size (None if it can): used by ``regbench plan`` to mark cells n/a."""
    if size.per_class is None:
        need = (size.total or 1) + (dev_size if dev_size is not None else default_dev_size(len(labels), size.total))
        return None if need <= len(labels) else f"needs {need} examples (train + dev), the pool has {len(labels)}"
    if task.type != "classification":
        return f"per-class size {size.label} needs a classification task, {task.name} is {task.type}"
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(counts) < task.num_labels or counts.min() < 2 * size.per_class:
        smallest = 0 if len(counts) < task.num_labels else int(counts.min())
        return (f"{size.label} needs {2 * size.per_class} examples per class (train + dev), its smallest class has "
                f"{smallest}")
    return None


def plan_per_class(task: TaskSpec, labels: list, per_class: int, seed: int) -> SplitPlan:
    """LM-BFF style: ``per_class`` train and ``per_class`` dev examples of every class, disjoint, from the data seed."""
    problem = check_size_fits(task, labels, SizeSpec(per_class=per_class))
    if problem:
        raise DataError(f"task {task.name!r}: {problem}; use a smaller k")
    rng = np.random.default_rng(seed)
    array = np.asarray(labels)
    train, dev = [], []
    for label in range(task.num_labels):
        members = rng.permutation(np.flatnonzero(array == label))
        dev.extend(members[:per_class].tolist())
        train.extend(members[per_class : 2 * per_class].tolist())
    return SplitPlan(train=sorted(train), dev=sorted(dev))


def default_dev_size(pool_size: int, train_size: int | None) -> int:
    if train_size is not None:
        return train_size
    return min(MAX_FULL_DEV, max(1, pool_size // 10))


def plan_split(task: TaskSpec, labels: list, train_size: int | None, dev_size: int | None, seed: int) -> SplitPlan:
    """Choose disjoint train and dev positions from a pool with these labels."""
    pool = len(labels)
    dev_n = dev_size if dev_size is not None else default_dev_size(pool, train_size)
    if dev_n < 1:
        raise DataError(f"dev size must be at least 1, got {dev_n}")
    room = pool - dev_n
    train_n = room if train_size is None else train_size
    if train_n < 1 or train_n > room:
        limit = pool // 2 if dev_size is None else max(room, 0)  # a default dev set is as large as the train set
        raise DataError(
            f"train size {train_n} does not fit task {task.name!r}: its training pool has {pool} examples and "
            f"{dev_n} would be kept for dev, so use 1..{limit} (or 'full', or a smaller --dev-size)"
        )
    positions = np.arange(pool)
    strata = _strata(task, labels)
    dev, rest = _draw(positions, dev_n, strata, seed)
    if train_n == len(rest):
        train = rest
    else:
        train, _ = _draw(rest, train_n, None if strata is None else strata[rest], seed + 1)
    return SplitPlan(train=sorted(int(i) for i in train), dev=sorted(int(i) for i in dev))


def stratified_subsample(task: TaskSpec, labels: list, size: int, seed: int = 0) -> list[int]:
    """A fixed subsample (e.g. to cap an evaluation set), stratified for classification."""
    if size >= len(labels):
        return list(range(len(labels)))
    chosen, _ = _draw(np.arange(len(labels)), size, _strata(task, labels), seed)
    return sorted(int(i) for i in chosen)


def _strata(task: TaskSpec, labels: list) -> np.ndarray | None:
    if task.type != "classification":
        return None
    return np.asarray(labels)


def _draw(positions: np.ndarray, n: int, strata: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (n chosen, the rest). Stratify where every class can be represented."""
    if n >= len(positions):
        return positions, positions[:0]
    stratify = strata
    if strata is not None:
        classes, counts = np.unique(strata, return_counts=True)
        if n < len(classes) or len(positions) - n < len(classes) or counts.min() < 2:
            stratify = None  # too small to keep every class on both sides: fall back to a uniform draw
    chosen, rest = train_test_split(positions, train_size=n, random_state=seed, stratify=stratify)
    return np.asarray(chosen), np.asarray(rest)

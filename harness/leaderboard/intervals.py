"""Intervals of the difference to STD: a two-level bootstrap over seeds × test examples, pure and fixed-seed.

Why two levels: a Δ measured on one test set of a few hundred examples varies with the test sample as well as
with the seeds, and a seed-only interval ignores the first. The design is crossed, and both levels are paired:

- test examples: the test set is the same for every seed and method of a block, so each replicate draws ONE set
  of example indices (N draws with replacement) and scores every run, of the method and of STD, on it — the
  run's primary metric recomputed on the resampled predictions and gold references;
- seeds: each replicate draws n seed indices with replacement; the method and STD use the same draws (a seed
  fixes the data sample, the noise draw and the initialisation for both);
- replicate b: Δ_b = mean over the drawn seeds s of [score(method run s, examples_b) − score(STD run s,
  examples_b)]; the interval is the 2.5th–97.5th percentile of the Δ_b (numpy's linear percentile).

Draws: example indices ``default_rng([BOOTSTRAP_SEED, 1]).integers(0, N, (B, N))``, then seed indices
``default_rng([BOOTSTRAP_SEED, 2]).integers(0, n, (B, n))``, so the same inputs give the same bytes, and a run's
replicate scores depend only on its predictions and (B, N): the caller can reuse STD's for every method.

Speed: plain accuracy on labels is vectorised (an example-count matrix times the 0/1 correctness vector,
``RESAMPLES_FAST`` replicates); any other primary metric (F1, MCC, correlations, seqeval) is recomputed through
``evaluation.score`` per replicate, ``RESAMPLES_SLOW`` replicates.

Pooled over tasks (pooled.py): the tasks' test sets differ, so no shared example draw exists; its interval is
:func:`stratified_interval`, a bootstrap of the (task, seed) pairs within each task — the unit its tests use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 0
RESAMPLES_FAST = 2000
RESAMPLES_SLOW = 200
LEVEL = 0.95
_CHUNK = 256  # replicates per count matrix: bounds memory at _CHUNK × N floats

Scorer = Callable[[Sequence[Any], Sequence[Any]], float]


def example_draws(n_examples: int, resamples: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    return np.random.default_rng([seed, 1]).integers(0, n_examples, size=(resamples, n_examples))


def seed_draws(n_seeds: int, resamples: int, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    return np.random.default_rng([seed, 2]).integers(0, n_seeds, size=(resamples, n_seeds))


def accuracy_replicates(pred: Sequence[Any], ref: Sequence[Any], draws: np.ndarray) -> np.ndarray:
    """Accuracy of one run on every replicate's examples (vectorised: counts × correctness)."""
    correct = (np.asarray(pred) == np.asarray(ref)).astype(float)
    resamples, n = draws.shape
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        block = draws[start:start + _CHUNK]
        offsets = (np.arange(len(block))[:, None] * n + block).ravel()
        counts = np.bincount(offsets, minlength=len(block) * n).reshape(len(block), n)
        out[start:start + len(block)] = counts @ correct / n
    return out


def generic_replicates(pred: Sequence[Any], ref: Sequence[Any], draws: np.ndarray, scorer: Scorer) -> np.ndarray:
    """Any metric of one run on every replicate's examples (one ``scorer`` call per replicate)."""
    return np.array([scorer([pred[i] for i in row], [ref[i] for i in row]) for row in draws.tolist()], dtype=float)


def delta_interval(method: np.ndarray, base: np.ndarray, level: float = LEVEL,
                   seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of Δ from per-run replicate scores (rows: paired seeds, same order for both; columns:
    replicates, computed on the same example draws)."""
    d = np.asarray(method, dtype=float) - np.asarray(base, dtype=float)
    n, resamples = d.shape
    if n < 1 or not np.isfinite(d).all():
        return math.nan, math.nan
    picks = seed_draws(n, resamples, seed)  # (B, n): which seeds replicate b uses
    deltas = d.T[np.arange(resamples)[:, None], picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return float(low), float(high)


def stratified_interval(groups: Sequence[Sequence[float]], resamples: int = RESAMPLES_FAST, level: float = LEVEL,
                        seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of the mean over all values of ``groups`` (one group per task: its seeds' paired
    differences), resampling with replacement WITHIN each group, so every replicate keeps each task's count: the
    pooled mean's spread is then seed noise only, not which tasks happened to be drawn. Groups are drawn in the
    given order from one ``default_rng([seed, 3])`` (the caller fixes the order, so the same inputs give the same
    bytes). Test examples are not resampled (the pooled tests do not either)."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    total = sum(len(a) for a in arrays)
    if not total or not all(np.isfinite(a).all() for a in arrays):
        return math.nan, math.nan
    rng = np.random.default_rng([seed, 3])
    sums = np.zeros(resamples)
    for values in arrays:
        sums += values[rng.integers(0, len(values), size=(resamples, len(values)))].sum(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(sums / total, [tail, 100 - tail])
    return float(low), float(high)


def seed_only_interval(d: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Fallback without gold references: the t-interval of the mean paired difference over seeds."""
    from .stats import t_interval

    return t_interval(d, level)


def same_test_set(runs: Sequence[dict[str, Any]]) -> bool:
    """Every run carries gold references over the same example ids, with the same gold values."""
    if not runs or any(r.get("ref") is None or r.get("ids") is None for r in runs):
        return False
    first = runs[0]
    return all(r["ids"] == first["ids"] and r["ref"] == first["ref"] and len(r["pred"]) == len(r["ids"])
               for r in runs)


def aligned(ids: Sequence[int], pred: Sequence[Any], ref: Sequence[Any]) -> dict[str, Any]:
    """Predictions and references in id order (batches may have been length-sorted), as plain tuples."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return {"ids": tuple(ids[i] for i in order), "pred": tuple(_freeze(pred[i]) for i in order),
            "ref": tuple(_freeze(ref[i]) for i in order)}


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value

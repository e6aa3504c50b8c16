"""The facts every table caption states, from the records and cell summaries of one (size, noise) table: seeds,
trials per cell (the cells' Optuna ``budget``), the test set (size, capped or not: ``train_info.data``), the
multiple-testing correction with its family size, and the minimum detectable effect (paired.mde_text)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from . import paired, pooled, stats


def _seeds(runs: pd.DataFrame) -> str:
    seeds = sorted(runs["seed"].unique())
    return f"Seeds: {len(seeds)} ({', '.join(str(s) for s in seeds)})"


def _trials(tuning: pd.DataFrame, size: str, noise: str) -> str:
    if tuning.empty:
        return "Trials per cell: unknown (no cell summaries)"
    budgets = tuning.loc[(tuning["size"] == size) & (tuning["noise"] == noise), "budget"].dropna()
    values = sorted({int(b) for b in budgets})
    if not values:
        return "Trials per cell: unknown (no cell summary of this table)"
    return f"Trials per cell: {values[0]}" if len(values) == 1 else f"Trials per cell: {values[0]}–{values[-1]}"


def _test_set(runs: pd.DataFrame) -> str:
    """Per task: test-set size and whether it was capped; tasks with the same description are listed together."""
    described: dict[str, list[str]] = {}
    for task, group in runs.groupby("task", sort=True):
        sizes = sorted({int(v) for v in group["test_size"] if isinstance(v, (int, float)) and math.isfinite(v)})
        capped = {bool(v) for v in group["test_capped"] if v is not None and not pd.isna(v)}
        size = "size not recorded" if not sizes else "/".join(str(n) for n in sizes) + " examples"
        cap = "" if not capped else ", capped" if capped == {True} else ", full" if capped == {False} else ", mixed"
        described.setdefault(size + cap, []).append(task)
    return "Test set: " + "; ".join(f"{text} ({', '.join(tasks)})" for text, tasks in described.items())


def _correction(info: dict[str, Any]) -> str:
    family = info["family"]
    if not family:
        return "Correction: none (no comparison with STD in this table)"
    return (f"Correction: Holm over the whole table, family = {family} comparisons with STD (exact sign-flip p); "
            f"a mark needs ≥ {info['pairs_for_mark']} non-zero seed pairs in a family of {family} "
            f"(one comparison alone: ≥ {stats.min_pairs()})")


def block_caption(runs: pd.DataFrame, tuning: pd.DataFrame, size: str, noise: str, info: dict[str, Any]) -> str:
    block = runs[(runs["size"] == size) & (runs["noise"] == noise)]
    return ". ".join([_seeds(block), _trials(tuning, size, noise), _test_set(block), _correction(info),
                      paired.mde_text(info)])


def overall_caption(runs: pd.DataFrame, tuning: pd.DataFrame, size: str, noise: str, info: dict[str, Any]) -> str:
    """The across-task table states its own Holm family (methods) in its note; the MDE is the per-task one."""
    block = runs[(runs["size"] == size) & (runs["noise"] == noise)]
    return ". ".join([_seeds(block), _trials(tuning, size, noise), _test_set(block),
                      "Per-task " + paired.mde_text(info)])


def plain_caption(runs: pd.DataFrame, tuning: pd.DataFrame) -> str:
    """Tables of intervals and averages (no tests): seeds, trials, test sets; no correction, no MDE."""
    levels = sorted({(s, n) for s, n in zip(runs["size"], runs["noise"])})
    trials = {f"{s} {n}": _trials(tuning, s, n).split(": ", 1)[1] for s, n in levels}
    text = (f"Trials per cell: {next(iter(trials.values()))}" if len(set(trials.values())) == 1
            else "Trials per cell: " + "; ".join(f"{k}: {v}" for k, v in trials.items()))
    return ". ".join([_seeds(runs), text, _test_set(runs), "Correction: none (intervals, no tests); MDE: not "
                      "applicable"])


def pooled_caption(runs: pd.DataFrame, tuning: pd.DataFrame, size: str, noise: str, info: dict[str, Any]) -> str:
    """The pooled table (pooled.py): the block's seeds, trials and test set, then its own pooling, correction (Holm
    over the block's methods) and pooled MDE."""
    block = runs[(runs["size"] == size) & (runs["noise"] == noise)]
    return ". ".join([_seeds(block), _trials(tuning, size, noise), _test_set(block), *pooled.caption_facts(info)])

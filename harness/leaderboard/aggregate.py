"""Run rows → the statistics every table and plot shows (pure pandas; no formatting here).

Design choices (METHODS.md/DESIGN.md leave them to us):
- The baseline of every significance test is ``std`` (plain fine-tuning); without std records there are no marks.
- A cell's expected seeds are the union of the seeds any method has in that (size, noise, task) block; a cell with
  fewer is *incomplete*: shown with its count, never bolded, and its method gets no average over tasks.
- Means include failed runs with their measured score (DESIGN.md); ``mean_ok`` is the same without them.
- Paired tests use only seeds both the method and std have; Holm corrects across the tasks of one
  (size, noise, method); "significant" means Holm-corrected paired t-test p < 0.05.
- Tasks flagged ``exclude_from_average`` in their YAML (e.g. WNLI) are left out of averages, ranks and the overall
  tests, but keep their own column.
- Ranks are computed per task among the methods that have that task; the average rank is over tasks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .loading import CELL

BASELINE = "std"
ALPHA = 0.05
BLOCK = ["size", "noise"]


def _expected_seeds(runs: pd.DataFrame) -> dict[tuple[str, str, str], int]:
    return {key: group["seed"].nunique() for key, group in runs.groupby(["size", "noise", "task"], sort=False)}


def cell_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, noise, task, method): spread over seeds, failure rate, paired tests vs the baseline."""
    expected = _expected_seeds(runs)
    rows = []
    for key, group in runs.groupby(CELL, sort=False):
        size, noise, task, method = key
        scores = group["primary"].to_numpy(float)
        mean, std = stats.mean_std(scores)
        low, high = stats.bootstrap_ci(scores)
        rows.append({
            "size": size, "noise": noise, "task": task, "method": method, "family": group["family"].iloc[0],
            "exclude_from_average": bool(group["exclude_from_average"].iloc[0]),
            "heldout_test": bool(group["heldout_test"].iloc[0]),
            "seeds": int(group["seed"].nunique()), "expected_seeds": expected[(size, noise, task)],
            "mean": mean, "std": std, "ci_low": low, "ci_high": high,
            "mean_ok": stats.mean_std(group.loc[group["status"] == "ok", "primary"].to_numpy(float))[0],
            "runs": len(group), "failures": int((group["status"] != "ok").sum()),
            "failure_rate": stats.failure_rate(list(group["status"])),
            "wall_seconds": float(group["wall_seconds"].sum()),
            **_vs_baseline(runs, key),
        })
    table = pd.DataFrame(rows)
    table["complete"] = table["seeds"] >= table["expected_seeds"]
    return _holm(table)


def _paired(runs: pd.DataFrame, key: tuple[Any, ...], method: str) -> pd.DataFrame:
    """Scores of ``method`` and the baseline on their common seeds (columns: seed, x, y)."""
    size, noise, task, _ = key
    block = runs[(runs["size"] == size) & (runs["noise"] == noise) & (runs["task"] == task)]
    mine = block[block["method"] == method][["seed", "primary"]]
    base = block[block["method"] == BASELINE][["seed", "primary"]]
    return mine.merge(base, on="seed", suffixes=("_x", "_y")).rename(columns={"primary_x": "x", "primary_y": "y"})


def _vs_baseline(runs: pd.DataFrame, key: tuple[Any, ...]) -> dict[str, Any]:
    empty = {"pairs": 0, "diff": math.nan, "p_t": math.nan, "p_signflip": math.nan, "signflip_floor": math.nan}
    if key[3] == BASELINE:
        return empty
    pairs = _paired(runs, key, key[3])
    if pairs.empty:
        return empty
    p_flip, floor = stats.sign_flip(pairs["x"], pairs["y"])
    return {"pairs": len(pairs), "diff": float(np.nanmean(pairs["x"] - pairs["y"])),
            "p_t": stats.paired_t(pairs["x"], pairs["y"]), "p_signflip": p_flip, "signflip_floor": floor}


def _holm(table: pd.DataFrame) -> pd.DataFrame:
    """Holm across tasks within each (size, noise, method), for both paired tests; then the significance mark."""
    table = table.copy()
    for column in ("p_t", "p_signflip"):
        table[f"{column}_holm"] = math.nan
        counted = table[~table["exclude_from_average"]]
        for _, group in counted.groupby([*BLOCK, "method"], sort=False):
            table.loc[group.index, f"{column}_holm"] = stats.holm(group[column].tolist())
        excluded = table["exclude_from_average"]  # tested on their own: not part of the corrected family
        table.loc[excluded, f"{column}_holm"] = table.loc[excluded, column]
    significant = table["p_t_holm"] < ALPHA
    table["sig"] = np.where(significant & (table["diff"] > 0), 1, np.where(significant & (table["diff"] < 0), -1, 0))
    return table


def add_ranks(cells: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method's mean per (size, noise, task); 1 = best, ties averaged."""
    cells = cells.copy()
    cells["rank"] = math.nan
    for _, group in cells.groupby([*BLOCK, "task"], sort=False):
        cells.loc[group.index, "rank"] = stats.ranks(group["mean"].to_numpy(float))
    return cells


def overall(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (size, noise, method): average over tasks (complete only), average rank, Wilcoxon vs the baseline over
    every (task, seed) pair, failure rate; per (size, noise): Friedman p and the Nemenyi critical difference."""
    counted = cells[~cells["exclude_from_average"]]
    counted_runs = runs[~runs["exclude_from_average"]]
    rows = []
    for (size, noise), block in counted.groupby(BLOCK, sort=False):
        tasks = sorted(block["task"].unique())
        friedman_p, cd = _friedman(block, tasks)
        for method, mine in block.groupby("method", sort=False):
            complete = len(mine) == len(tasks) and bool(mine["complete"].all())
            block_runs = counted_runs[(counted_runs["size"] == size) & (counted_runs["noise"] == noise)]
            rows.append({"size": size, "noise": noise, "method": method, "tasks": len(mine),
                         "average": float(mine["mean"].mean()) if complete else math.nan,
                         "average_rank": float(mine["rank"].mean()), "complete": complete,
                         "failure_rate": stats.failure_rate(list(block_runs.loc[
                             block_runs["method"] == method, "status"])),
                         **_wilcoxon(block_runs, method), "friedman_p": friedman_p, "cd": cd})
    return pd.DataFrame(rows)


def _wilcoxon(block_runs: pd.DataFrame, method: str) -> dict[str, Any]:
    if method == BASELINE:
        return {"pairs": 0, "wilcoxon_p": math.nan, "overall_sig": 0}
    keys = ["task", "seed"]
    mine = block_runs[block_runs["method"] == method][[*keys, "primary"]]
    base = block_runs[block_runs["method"] == BASELINE][[*keys, "primary"]]
    pairs = mine.merge(base, on=keys).dropna()
    if pairs.empty:
        return {"pairs": 0, "wilcoxon_p": math.nan, "overall_sig": 0}
    p = stats.wilcoxon(pairs["primary_x"], pairs["primary_y"])
    diff = float((pairs["primary_x"] - pairs["primary_y"]).median())
    return {"pairs": len(pairs), "wilcoxon_p": p, "overall_sig": int(np.sign(diff)) if p < ALPHA else 0}


def rank_matrix(block: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Tasks × methods matrix of means, keeping only methods that have every task (a Friedman block design)."""
    matrix = block.pivot_table(index="task", columns="method", values="mean", aggfunc="first").reindex(tasks)
    return matrix.dropna(axis=1)


def _friedman(block: pd.DataFrame, tasks: list[str]) -> tuple[float, float]:
    matrix = rank_matrix(block, tasks)
    p = stats.friedman(matrix.to_numpy())
    return p, (stats.nemenyi_cd(matrix.shape[1], len(tasks)) if math.isfinite(p) else math.nan)


def by_level(cells: pd.DataFrame, level: str) -> pd.DataFrame:
    """Method × ``level`` (noise or size) averages over the tasks counted in averages, for robustness / few-shot
    views; a task enters a method's row only if the method has it at every level (so levels are comparable)."""
    other = "size" if level == "noise" else "noise"
    counted = cells[~cells["exclude_from_average"]]
    levels = counted[level].nunique()
    full = counted.groupby([other, "task", "method"]).filter(lambda g: g[level].nunique() == levels)
    table = full.pivot_table(index=[other, "method"], columns=level, values="mean", aggfunc="mean", sort=False)
    return table.reset_index()


def cost(runs: pd.DataFrame, tuning: pd.DataFrame) -> pd.DataFrame:
    """Per method: cells, trials by state, tuning CPU/GPU-seconds (cell summaries) and final-run seconds."""
    finals = runs.groupby("method", sort=False).agg(final_runs=("seed", "size"), final_seconds=("wall_seconds", "sum"))
    if tuning.empty:
        finals[["cells", "trials", "complete", "pruned", "failed", "cpu_seconds", "gpu_seconds"]] = math.nan
        return finals.reset_index()
    states = tuning.assign(**{s.lower(): tuning["trials"].map(lambda t, s=s: sum(x.get("state") == s for x in t))
                              for s in ("COMPLETE", "PRUNED", "FAIL")})
    spent = states.groupby("method", sort=False).agg(
        cells=("task", "size"), trials=("trials", lambda t: sum(len(x) for x in t)), complete=("complete", "sum"),
        pruned=("pruned", "sum"), failed=("fail", "sum"), cpu_seconds=("cpu_seconds", "sum"),
        gpu_seconds=("gpu_seconds", "sum"))
    return finals.join(spent, how="left").reset_index()


def grouped_means(runs: pd.DataFrame, prefix: str, by: list[str]) -> pd.DataFrame:
    """Mean of every ``<prefix>.*`` column (collapse or OOD metrics) per group; empty when no record has one."""
    columns = sorted(c for c in runs.columns if c.startswith(prefix))
    if not columns:
        return pd.DataFrame()
    present = runs.dropna(subset=columns, how="all")
    return present.groupby(by, sort=False)[columns].mean().reset_index()

"""Run rows → the statistics every table and plot shows (pure pandas; no formatting here).

Design choices (METHODS.md/DESIGN.md leave them to us):
- The baseline of every comparison is ``std`` (plain fine-tuning); without std records there are no marks.
- A cell's expected seeds are the union of the seeds any method has in that (size, noise, task) block; a cell with
  fewer scored seeds is *incomplete*: shown with its count, never bolded, and its method gets no average.
- Means include failed runs with their measured score, and diverged runs at the majority-class score (loading.py);
  ``mean_ok`` is the same without them. The spread of a mean is its t-interval over seeds.
- Paired comparisons with std and the Holm family of a table: paired.py. Significant = Holm-adjusted exact
  sign-flip p < 0.05, the family being every (task, method) comparison of one (size, noise) table.
- Tasks flagged ``exclude_from_average`` in their YAML (e.g. WNLI) are left out of averages, ranks and the
  across-task tests, but keep their column (and their comparisons stay in the table's Holm family).
- Ranks are computed per task among the methods that have that task; the average rank is over tasks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import crossdataset, paired, stats
from .loading import CELL

BASELINE = paired.BASELINE
ALPHA = stats.ALPHA
BLOCK = ["size", "noise"]


def _expected_seeds(runs: pd.DataFrame) -> dict[tuple[str, str, str], int]:
    return {key: group["seed"].nunique() for key, group in runs.groupby(["size", "noise", "task"], sort=False)}


def cell_stats(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, noise, task, method): spread over seeds, failures, paired comparison with the baseline,
    Holm over the table's family and the marks."""
    expected = _expected_seeds(runs)
    memo: dict[Any, np.ndarray] = {}  # bootstrap replicate scores per run (STD's reused by every method)
    tasks = {key: group for key, group in runs.groupby(["size", "noise", "task"], sort=False)}
    rows = []
    for key, group in runs.groupby(CELL, sort=False):
        size, noise, task, method = key
        scores = group["primary"].to_numpy(float)
        mean, std = stats.mean_std(scores)
        low, high = stats.t_interval(scores)
        scored = int(np.isfinite(scores).sum())
        rows.append({
            "size": size, "noise": noise, "task": task, "method": method, "family": group["family"].iloc[0],
            "exclude_from_average": bool(group["exclude_from_average"].iloc[0]),
            "heldout_test": bool(group["heldout_test"].iloc[0]),
            "seeds": int(group["seed"].nunique()), "scored": scored, "expected_seeds": expected[(size, noise, task)],
            "mean": mean, "std": std, "ci_low": low, "ci_high": high,
            "chance": _finite_mean(group["majority_test"]), "at_majority": int(group["at_majority"].sum()),
            "mean_ok": stats.mean_std(group.loc[group["status"] == "ok", "primary"].to_numpy(float))[0],
            "runs": len(group), "failures": int((group["status"] != "ok").sum()),
            "failure_rate": stats.failure_rate(list(group["status"])),
            "wall_seconds": float(group["wall_seconds"].sum()),
            **paired.compare(tasks[(size, noise, task)], method, memo),
        })
    table = pd.DataFrame(rows)
    table["complete"] = table["scored"] >= table["expected_seeds"]
    return paired.holm_family(table, BLOCK)


def _finite_mean(values: pd.Series) -> float:
    x = values.to_numpy(float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def table_info(cells: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (size, noise) table: its Holm family and MDE (paired.table_mde)."""
    return {key: paired.table_mde(group) for key, group in cells.groupby(BLOCK, sort=False)}


def add_ranks(cells: pd.DataFrame) -> pd.DataFrame:
    """Rank of each method's mean per (size, noise, task); 1 = best, ties averaged."""
    cells = cells.copy()
    cells["rank"] = math.nan
    for _, group in cells.groupby([*BLOCK, "task"], sort=False):
        cells.loc[group.index, "rank"] = stats.ranks(group["mean"].to_numpy(float))
    return cells


def overall(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (size, noise, method): average over tasks (complete only), average rank, failure rate, and the tests
    across tasks (crossdataset.py): Friedman / Iman–Davenport, Nemenyi CD, Holm vs STD on ranks, Wilcoxon on
    per-task mean differences (Holm across methods), ASO vs STD."""
    counted = cells[~cells["exclude_from_average"]]
    counted_runs = runs[~runs["exclude_from_average"]]
    rows = []
    for (size, noise), block in counted.groupby(BLOCK, sort=False):
        tasks = sorted(block["task"].unique())
        matrix = rank_matrix(block, tasks)
        omnibus = crossdataset.friedman(matrix.to_numpy())
        cd = crossdataset.nemenyi_cd(matrix.shape[1], len(tasks)) if math.isfinite(omnibus["friedman_p"]) else math.nan
        vs_control = crossdataset.holm_vs_control(matrix, BASELINE)
        means = block.pivot_table(index="task", columns="method", values="mean", aggfunc="first").reindex(tasks)
        wilcoxon = crossdataset.wilcoxon_task_means(means, BASELINE)
        wilcoxon_holm = dict(zip(wilcoxon, stats.holm([p for _, p in wilcoxon.values()])))
        block_runs = counted_runs[(counted_runs["size"] == size) & (counted_runs["noise"] == noise)]
        centred = _centred(block_runs)
        for method, mine in block.groupby("method", sort=False):
            complete = len(mine) == len(tasks) and bool(mine["complete"].all())
            pairs, p = wilcoxon.get(method, (0, math.nan))
            diff = float((means[method] - means[BASELINE]).median()) if BASELINE in means and pairs else math.nan
            rows.append({"size": size, "noise": noise, "method": method, "tasks": len(mine),
                         "average": float(mine["mean"].mean()) if complete else math.nan,
                         "average_rank": float(mine["rank"].mean()), "complete": complete,
                         "failure_rate": stats.failure_rate(list(block_runs.loc[
                             block_runs["method"] == method, "status"])),
                         "task_pairs": pairs, "wilcoxon_p": p, "wilcoxon_p_holm": wilcoxon_holm.get(method, math.nan),
                         "rank_p_holm": vs_control.get(method, math.nan),
                         "aso": _aso(centred, method, block["method"].nunique() - 1),
                         **_overall_sig(diff, wilcoxon_holm.get(method, math.nan)), **omnibus, "cd": cd,
                         "friedman_methods": matrix.shape[1]})
    return pd.DataFrame(rows)


def _overall_sig(median_diff: float, p_holm: float) -> dict[str, Any]:
    return {"median_task_diff": median_diff,
            "overall_sig": int(np.sign(median_diff)) if p_holm < ALPHA and math.isfinite(median_diff) else 0}


def _centred(block_runs: pd.DataFrame) -> pd.DataFrame:
    """(task, seed) scores minus STD's mean on that task, so task difficulty does not enter the ASO comparison."""
    base = block_runs[block_runs["method"] == BASELINE].groupby("task")["primary"].mean()
    scored = block_runs[np.isfinite(block_runs["primary"].to_numpy(float)) & block_runs["task"].isin(base.index)]
    return scored.assign(centred=scored["primary"] - scored["task"].map(base))


def _aso(centred: pd.DataFrame, method: str, comparisons: int) -> float:
    if method == BASELINE or centred.empty:
        return math.nan
    return crossdataset.aso(centred.loc[centred["method"] == method, "centred"].to_numpy(float),
                            centred.loc[centred["method"] == BASELINE, "centred"].to_numpy(float), comparisons)


def rank_matrix(block: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Tasks × methods matrix of means, keeping only methods that have every task (a Friedman block design)."""
    matrix = block.pivot_table(index="task", columns="method", values="mean", aggfunc="first").reindex(tasks)
    return matrix.dropna(axis=1)


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

"""Per-cell comparisons with STD over matched seeds, the Holm family of a table, and the table's MDE.

- Pairs: the seeds both the method and STD have a score for (a diverged run is scored at the majority-class
  level, so it stays paired; only an old record with no score at all drops out, and its cell is incomplete).
- Tests: exact sign-flip p (primary) and the paired t p (secondary, NaN when the differences do not vary).
- Family: every (task, method ≠ STD) comparison of one (size, noise) table with a sign-flip p; Holm over it; a mark
  when the Holm-adjusted sign-flip p < α (which the floor 2/2ⁿ makes impossible below ``stats.min_pairs()`` pairs).
- Δ interval: two-level bootstrap (intervals.py) where every paired run carries gold references over one test set;
  else the seed-only t-interval of the paired differences, labelled.
- MDE: per table, the paired-t MDE (noncentral t, 80% power, two-sided α) at the table's typical pair count (the
  most common one; ties → the smaller), from the SD of differences pooled over the table's comparisons (weighted
  by degrees of freedom); ∞ when the exact test cannot reach α with that many pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from . import intervals, stats

BASELINE = "std"
ALPHA = stats.ALPHA


@cache
def _task(task: str) -> Any:
    from regbench.benchmarks.taskspec import get_task

    try:
        return get_task(task)
    except Exception:  # noqa: BLE001 — a task not registered here cannot be re-scored: seed-only interval
        return None


def replicate_scores(row: Any, resamples: int, memo: dict[Any, np.ndarray]) -> np.ndarray:
    """One run's primary score on every bootstrap replicate's examples (memoised per run: STD's are reused)."""
    key = (row.run_id, row.task, row.method, row.seed, resamples)
    if key not in memo:
        pred, spec = row.pred, _task(row.task)
        draws = intervals.example_draws(len(pred["ids"]), resamples)
        if fast(spec, row.pred_kind):
            memo[key] = intervals.accuracy_replicates(pred["pred"], pred["ref"], draws)
        else:
            from regbench.harness.run.evaluation import score

            memo[key] = intervals.generic_replicates(pred["pred"], pred["ref"], draws,
                                                     lambda p, r: score(spec, list(p), list(r))["primary"])
    return memo[key]


def fast(spec: Any, kind: str | None) -> bool:
    return spec is not None and tuple(spec.primary) == ("accuracy",) and kind == "label"


def _delta_interval(d: np.ndarray, mine: list[Any], base: list[Any], memo: dict[Any, np.ndarray]) -> dict[str, Any]:
    """``mine``/``base``: the paired runs (rows), in the same seed order as ``d``."""
    runs = mine + base
    usable = all(r.pred is not None and not r.at_majority for r in runs) and _task(runs[0].task) is not None
    if not usable or not intervals.same_test_set([r.pred for r in runs]):
        low, high = intervals.seed_only_interval(d)
        why = ("a run scored at the majority level" if any(r.at_majority for r in runs) else
               "no gold references in records" if any(r.pred is None for r in runs) else
               "task not registered" if _task(runs[0].task) is None else "test sets differ")
        return {"delta_low": low, "delta_high": high, "delta_ci": f"seeds only, t ({why})"}
    b = intervals.RESAMPLES_FAST if fast(_task(runs[0].task), runs[0].pred_kind) else intervals.RESAMPLES_SLOW
    low, high = intervals.delta_interval(np.vstack([replicate_scores(r, b, memo) for r in mine]),
                                         np.vstack([replicate_scores(r, b, memo) for r in base]))
    return {"delta_low": low, "delta_high": high, "delta_ci": f"seeds × examples, B={b}"}


EMPTY = {"pairs": 0, "nonzero": 0, "diff": math.nan, "sd_diff": math.nan, "p_t": math.nan,
         "p_signflip": math.nan, "signflip_floor": math.nan, "reachable": False, "delta_low": math.nan,
         "delta_high": math.nan, "delta_ci": "", "differences": ()}


def compare(block: pd.DataFrame, method: str, memo: dict[Any, np.ndarray]) -> dict[str, Any]:
    """``method`` against STD on one task of one block (``block``: that task's runs)."""
    if method == BASELINE:
        return dict(EMPTY)
    keep = block[np.isfinite(block["primary"].to_numpy(float))]
    mine = {r.seed: r for r in keep[keep["method"] == method].itertuples()}
    base = {r.seed: r for r in keep[keep["method"] == BASELINE].itertuples()}
    seeds = sorted(set(mine) & set(base))
    if not seeds:
        return dict(EMPTY)
    x = np.array([mine[s].primary for s in seeds], dtype=float)
    y = np.array([base[s].primary for s in seeds], dtype=float)
    d = x - y
    p_flip, floor = stats.sign_flip(x, y)
    nonzero = int((np.abs(d) > stats.ZERO).sum())
    return {"pairs": len(seeds), "nonzero": nonzero, "diff": float(d.mean()),
            "sd_diff": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            "p_t": stats.paired_t(x, y), "p_signflip": p_flip, "signflip_floor": floor,
            "reachable": stats.can_reach(nonzero), "differences": tuple(d.tolist()),
            **_delta_interval(d, [mine[s] for s in seeds], [base[s] for s in seeds], memo)}


def holm_family(cells: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Holm over every comparison of a table (``by``: the table's keys); the family size per row; the marks."""
    cells = cells.copy()
    cells["p_signflip_holm"] = math.nan
    cells["holm_family"] = 0
    for _, group in cells.groupby(by, sort=False):
        tested = group[np.isfinite(group["p_signflip"].to_numpy(float))]
        cells.loc[tested.index, "p_signflip_holm"] = stats.holm(tested["p_signflip"].tolist())
        cells.loc[group.index, "holm_family"] = len(tested)
    significant = cells["p_signflip_holm"] < ALPHA
    cells["sig"] = np.where(significant & (cells["diff"] > 0), 1,
                            np.where(significant & (cells["diff"] < 0), -1, 0))
    return cells


def typical_pairs(counts: list[int]) -> int:
    """The most common pair count (ties → the smaller); 0 for none."""
    found = Counter(c for c in counts if c > 0)
    return min(found, key=lambda c: (-found[c], c)) if found else 0


def table_mde(group: pd.DataFrame) -> dict[str, Any]:
    """Pooled SD of differences, typical n, MDE (paired t) and whether the exact test can reach α at that n."""
    compared = group[group["pairs"] > 0]
    sd, used = stats.pooled_sd([list(d) for d in compared["differences"]])
    n = typical_pairs(compared["pairs"].astype(int).tolist())
    family = int((np.isfinite(compared["p_signflip"].to_numpy(float))).sum())
    return {"pooled_sd": sd, "pooled_over": used, "mde_n": n, "mde_t": stats.mde(sd, n),
            "mde_reachable": stats.can_reach(n), "family": family,
            "pairs_for_mark": stats.min_pairs(ALPHA, max(family, 1))}


def mde_text(info: dict[str, Any]) -> str:
    """The MDE sentence of a caption (scores ×100)."""
    n, sd = info["mde_n"], info["pooled_sd"]
    basis = (f"80% power, two-sided α = {ALPHA:g}, paired t via the noncentral t at n = {n}, SD of differences "
             f"{100 * sd:.2f} pooled over {info['pooled_over']} comparisons (df-weighted)")
    return mde_sentence(info, "MDE", "no paired comparisons with ≥ 2 seeds", basis,
                        f"{n} seeds cannot reach p < {ALPHA:g} with the exact sign-flip test")


def mde_sentence(info: dict[str, Any], label: str, empty: str, basis: str, unreachable: str) -> str:
    """``<label>: x points (basis)``; ``∞`` with why where the exact test's floor rules any mark out at this n (the
    paired t's figure is still given); ``n/a`` with ``empty`` where nothing was paired. Shared by the per-task and
    the pooled captions (pooled.mde_text), which differ only in what n counts and what the SD pools over."""
    if not info["mde_n"] or not math.isfinite(info["pooled_sd"]):
        return f"{label}: n/a ({empty})"
    if not info["mde_reachable"]:
        return f"{label}: ∞ ({unreachable}; the paired t alone would need {100 * info['mde_t']:.1f} points; {basis})"
    return f"{label}: {100 * info['mde_t']:.1f} points ({basis})"

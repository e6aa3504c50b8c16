"""Pooled comparison with STD per (size, noise) block: a method's primary test score paired with STD's over every
(task, seed) where both have one, all tasks of the block in one test.

Why: with 3–5 seeds a per-task comparison cannot reach p < 0.05 (its exact floor is 2/2ⁿ), so on a small grid
"is X better than STD at this size and noise?" needs the pairs of every task. What pooling costs: it treats the
(task, seed) pairs as exchangeable, so a mean Δ can hide opposite per-task effects; the table therefore counts the
tasks a method wins and loses (per-task mean Δ > 0 / < 0) beside it.

- Pairs: as in paired.py (a diverged run scored at the majority level stays paired; an unscored one drops out).
  Tasks flagged ``exclude_from_average`` are left out, as in every across-task test (aggregate.py).
- Tests: ``stats.sign_flip`` on all pairs (exact up to ``stats.EXACT_SPLIT_MAX_N`` non-zero pairs, a fixed-seed
  Monte Carlo beyond), ``stats.paired_t`` for reference; Holm over the block's methods (the family); a mark where
  the Holm-adjusted sign-flip p < α — never below the floor, since p ≥ 2/2ⁿ.
- Interval: ``intervals.stratified_interval`` (the pairs resampled within each task).
- MDE: paired t (noncentral t, 80% power, two-sided α) at the block's typical pair count with the SD of the pooled
  differences, df-weighted over the methods (``stats.pooled_sd``); ∞ when family × 2/2ⁿ ≥ α, i.e. when the exact
  test cannot reach α at Holm's first step. A row's verdict uses its own n.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from . import intervals, paired, stats
from .loading import noise_order, size_order

BASELINE = paired.BASELINE
ALPHA = stats.ALPHA
EMPTY = {"tasks": 0, "seeds": 0, "pairs": 0, "nonzero": 0, "diff": math.nan, "delta_low": math.nan,
         "delta_high": math.nan, "p_signflip": math.nan, "signflip_floor": math.nan, "p_t": math.nan, "wins": 0,
         "losses": 0, "ties": 0, "basis": "", "differences": ()}


def pairs(block: pd.DataFrame, method: str) -> pd.DataFrame:
    """(task, seed, mine, base, diff) where ``method`` and STD both have a finite score, sorted by task and seed."""
    scored = block[np.isfinite(block["primary"].to_numpy(float)) & ~block["exclude_from_average"].astype(bool)]
    mine = scored[scored["method"] == method].set_index(["task", "seed"])["primary"]
    base = scored[scored["method"] == BASELINE].set_index(["task", "seed"])["primary"]
    joined = pd.concat({"mine": mine, "base": base}, axis=1, join="inner").sort_index()
    return joined.assign(diff=joined["mine"] - joined["base"]).reset_index()


def compare(found: pd.DataFrame) -> dict[str, Any]:
    """The pooled statistics of one method's pairs (``pairs``' frame)."""
    if found.empty:
        return dict(EMPTY)
    x, y, d = (found[c].to_numpy(float) for c in ("mine", "base", "diff"))
    p, floor = stats.sign_flip(x, y)
    by_task = [group.to_numpy(float) for _, group in found.groupby("task", sort=True)["diff"]]
    task_means = np.array([g.mean() for g in by_task])
    low, high = intervals.stratified_interval(by_task)
    nonzero = int((np.abs(d) > stats.ZERO).sum())
    return {"tasks": len(by_task), "seeds": int(found["seed"].nunique()), "pairs": len(d), "nonzero": nonzero,
            "diff": float(d.mean()), "delta_low": low, "delta_high": high, "p_signflip": p, "signflip_floor": floor,
            "p_t": stats.paired_t(x, y), "wins": int((task_means > stats.ZERO).sum()),
            "losses": int((task_means < -stats.ZERO).sum()), "ties": int((np.abs(task_means) <= stats.ZERO).sum()),
            "basis": stats.sign_flip_basis(nonzero), "differences": tuple(d.tolist())}


def pooled(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, noise, method ≠ STD) of every block that has STD runs; Holm over each block's methods."""
    rows = []
    keys = sorted({(s, n) for s, n in zip(runs["size"], runs["noise"])},
                  key=lambda b: (size_order(b[0]), noise_order(b[1])))
    for size, noise in keys:
        block = runs[(runs["size"] == size) & (runs["noise"] == noise)]
        if not (block["method"] == BASELINE).any():
            continue
        for method in sorted(m for m in block["method"].unique() if m != BASELINE):
            rows.append({"size": size, "noise": noise, "method": method, **compare(pairs(block, method))})
    frame = pd.DataFrame(rows, columns=["size", "noise", "method", *EMPTY])
    return _holm(frame)


def _holm(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted sign-flip p over each block's methods, the mark, and each row's MDE at its own n."""
    frame = frame.assign(p_signflip_holm=math.nan, holm_family=0, mde=math.nan)
    for _, group in frame.groupby(["size", "noise"], sort=False):
        tested = group[np.isfinite(group["p_signflip"].to_numpy(float))]
        frame.loc[tested.index, "p_signflip_holm"] = stats.holm(tested["p_signflip"].tolist())
        frame.loc[group.index, "holm_family"] = len(tested)
        info = block_info(group)
        frame.loc[group.index, "mde"] = [row_mde(info, n) for n in group["pairs"]]
    significant = frame["p_signflip_holm"].to_numpy(float) < ALPHA
    diff = frame["diff"].to_numpy(float)
    frame["sig"] = np.where(significant & (diff > 0), 1, np.where(significant & (diff < 0), -1, 0))
    return frame


def block_info(group: pd.DataFrame) -> dict[str, Any]:
    """One block's pooled SD of differences, typical n, MDE, family and what a mark needs."""
    compared = group[group["pairs"] > 0]
    sd, used = stats.pooled_sd([list(d) for d in compared["differences"]])
    n = paired.typical_pairs(compared["pairs"].astype(int).tolist())
    family = int(np.isfinite(compared["p_signflip"].to_numpy(float)).sum())
    need = stats.min_pairs(ALPHA, max(family, 1))
    return {"pooled_sd": sd, "pooled_over": used, "mde_n": n, "mde_t": stats.mde(sd, n), "family": family,
            "pairs_for_mark": need, "mde_reachable": n >= need, "bases": sorted(set(compared["basis"])),
            **{k: int(compared[k].max()) if len(compared) else 0 for k in ("tasks", "seeds")}}


def row_mde(info: dict[str, Any], n: int) -> float:
    """The pooled MDE at one method's own pair count; ∞ where the exact test cannot reach α after Holm."""
    if n < info["pairs_for_mark"]:
        return math.inf
    return stats.mde(info["pooled_sd"], n)


def mde_points(value: float) -> str:
    return "∞" if math.isinf(value) else "n/a" if not math.isfinite(value) else f"{100 * value:.1f}"


def verdict(row: Any) -> str:
    """In words: a mark decides; without one the data cannot decide at this MDE (never a win)."""
    if not row.pairs:
        return "not compared (no pairs with STD)"
    if row.sig:
        return "better" if row.sig > 0 else "worse"
    return f"inconclusive at MDE {mde_points(row.mde)}"


def mde_text(info: dict[str, Any]) -> str:
    """The pooled MDE sentence of the caption (points = score × 100)."""
    n, sd, family = info["mde_n"], info["pooled_sd"], info["family"]
    basis = (f"80% power, two-sided α = {ALPHA:g}, paired t via the noncentral t at n = {n} pairs, SD of the pooled "
             f"differences {100 * sd:.2f} (df-weighted over {info['pooled_over']} methods)")
    floor = f"{family} × 2/2^{n} = {family * stats.sign_flip_floor(n):.3g}" if n else ""
    return paired.mde_sentence(info, "Pooled MDE", "no method has ≥ 2 pairs with STD", basis,
                               f"{n} pairs cannot reach p < {ALPHA:g} with the exact sign-flip test after Holm over "
                               f"{family} methods: {floor}")


def caption_facts(info: dict[str, Any]) -> list[str]:
    """What the pooled table's caption adds to the block's seeds, trials and test set."""
    family = info["family"]
    exact = info["bases"] in ([], ["exact"])
    return [f"Pooled over {info['tasks']} tasks × {info['seeds']} seeds (tasks excluded from averages left out); "
            f"95% interval of Δ: percentile bootstrap of the pairs resampled within each task (B = "
            f"{intervals.RESAMPLES_FAST}, fixed seed; seeds only, test examples not resampled)",
            "Sign-flip p: exact (every one of the 2^n sign patterns)" if exact else
            f"Sign-flip p: exact up to {stats.EXACT_SPLIT_MAX_N} non-zero pairs, beyond that "
            + stats.sign_flip_basis(stats.EXACT_SPLIT_MAX_N + 1),
            f"Correction: Holm over the {family} methods of this block (family = {family}, exact sign-flip p); a mark "
            f"needs ≥ {info['pairs_for_mark']} non-zero pairs", mde_text(info),
            "Pooling treats the (task, seed) pairs as exchangeable, so a mean Δ can hide opposite per-task effects: "
            "tasks W / L / T counts the tasks whose mean Δ is > 0 / < 0 / = 0"]

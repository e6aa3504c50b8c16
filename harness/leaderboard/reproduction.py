"""The claims of the two seed papers (REPINA, MVCR), each tested on the runs frame (loading.py) of any records.

One :class:`Claim` per claim: the paper, its words, how we test it, and a function of the runs frame that returns
an :class:`Outcome` — the comparisons run, their statistics, and a verdict. The document is reproduction_doc.py.

Every comparison pairs one method's value with a reference method's over matched runs (same size, noise, task and
seed: the same data sample, noise draw and initialisation), oriented so that Δ > 0 is the direction the paper
claims. Statistics come from the leaderboard's modules, never re-derived here:

- test: ``stats.sign_flip`` (exact two-sided sign-flip p of the mean Δ; exact up to ``stats.EXACT_SPLIT_MAX_N``
  non-zero pairs, a fixed-seed Monte Carlo beyond) through ``pooled.compare``; on 0/1 outcomes (a run failed or
  not) it is the exact McNemar test, i.e. the two-sided binomial sign test on the discordant pairs;
- correction: Holm (``stats.holm``) over the comparisons of one claim (the family = the claim);
- interval: ``intervals.stratified_interval``, 95% percentile bootstrap of the pairs resampled within each stratum
  (a stratum: the pairs of one (size, noise, task), plus the OOD set or noise level where the test has one);
- MDE: the paired-t MDE at 80% power (``stats.mde``) at the comparison's own pair count, with the SD of the
  differences pooled over the claim's comparisons of the same metric (``stats.pooled_sd``); ∞ where the exact test
  cannot reach α after Holm (``pooled.row_mde``).

Verdict rule, per comparison:
- "supported": Holm-corrected exact p < 0.05 and Δ > 0 (the claimed direction);
- "not supported": Holm-corrected p < 0.05 and Δ < 0 (significant in the opposite direction), or Δ ≤ 0 with the
  95% interval's upper end below a finite MDE (the data rule out a gain as large as the detectable effect);
- otherwise "inconclusive at MDE x.x" (its units); "inconclusive: every pair equal" when no pair differs.
A claim is supported when every comparison of its family is, not supported when any comparison is not supported,
inconclusive otherwise (with the count supported). A method, block or field the records lack makes the claim "not
tested here: <what is missing>"; methods the claim names but the records lack are listed beside the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import pooled, stats

ALPHA = stats.ALPHA
STD = pooled.BASELINE
REPINA = ("repina_i", "repina_mlp")
BASELINES = ("std++", "lp-ft", "l2-sp", "smart", "r3f")  # REPINA's five comparison methods
MVCR = "mvcr"
CELL = ["size", "noise", "task"]


@dataclass(frozen=True)
class Metric:
    """What a comparison measures: a runs-frame column and its display scale and unit (higher = claimed)."""

    column: str
    label: str
    scale: float = 100.0
    unit: str = "points"
    short: str = ""  # named in a comparison's label where a claim tests several metrics

    def show(self, value: float, signed: bool = True) -> str:
        if not math.isfinite(value):
            return "∞" if math.isinf(value) else "n/a"
        shown = round(self.scale * value, 1) + 0.0  # + 0.0: no "-0.0"
        return f"{shown:+.1f}" if signed else f"{shown:.1f}"


SCORE = Metric("primary", "test score (primary metric)")
NOT_FAILED = Metric("not_failed", "run not failed (0/1)")
OOD = Metric("ood", "OOD test score (primary metric)")
COLLAPSE = (Metric("collapse.cka", "linear CKA with the pretrained encoder", short="CKA"),
            Metric("collapse.probe_transfer_delta", "probe transfer, fine-tuned − pretrained encoder",
                   short="probe transfer"),
            Metric("collapse.effective_rank", "effective rank of the representations", 1.0, "rank units",
                   short="effective rank"))


@dataclass
class Outcome:
    """A claim's result: its comparisons (one row each), verdict, and lines about what was or was not run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""
    category: str = "not tested"  # supported | not supported | inconclusive | not tested
    notes: list[str] = field(default_factory=list)  # what the claim names that the records lack
    facts: list[str] = field(default_factory=list)  # descriptive lines computed from the runs (no test)


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    text: str  # the paper's words (quoted) or our reading of them (said so)
    test: str  # how we test it, in words
    evaluate: Callable[[pd.DataFrame], Outcome]


# ---- selecting runs -------------------------------------------------------------------------------------------------

def is_total_size(size: str) -> bool:
    """A low-resource size given as a total number of examples (``n256``), not per class (``k16``) or ``full``."""
    return size.startswith("n") and size[1:].isdigit()


def block(runs: pd.DataFrame, *, kind: str, noise: str | None = "clean") -> pd.DataFrame:
    """Runs of the sizes of one kind (``total``: n…, ``kshot``: k…, ``any``) at one noise level (None: noisy)."""
    sizes = runs["size"].astype(str)
    chosen = (sizes.map(is_total_size) if kind == "total" else sizes.str.startswith("k") if kind == "kshot"
              else pd.Series(True, index=runs.index))
    noisy = runs["noise"] != "clean"
    return runs[chosen & (noisy if noise is None else runs["noise"] == noise)]


def scored(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that enter score comparisons: tasks flagged ``exclude_from_average`` left out, as in pooled.py."""
    return runs[~runs["exclude_from_average"].astype(bool)]


def present(runs: pd.DataFrame, methods: Sequence[str]) -> list[str]:
    return [m for m in methods if (runs["method"] == m).any()]


# ---- pairing and testing --------------------------------------------------------------------------------------------

def values(runs: pd.DataFrame, method: str, column: str, keys: Sequence[str]) -> pd.Series:
    """``method``'s finite values of ``column``, indexed by ``keys`` (one per run)."""
    if column not in runs.columns:
        return pd.Series(dtype=float)
    mine = runs[(runs["method"] == method)]
    mine = mine[np.isfinite(mine[column].to_numpy(float))]
    return mine.set_index(list(keys))[column].astype(float)


def join(mine: pd.Series, base: pd.Series, strata: Sequence[str]) -> pd.DataFrame:
    """Matched pairs as pooled.compare reads them: ``task`` = the stratum label, ``seed``, ``mine``, ``base``,
    ``diff``, sorted by stratum and seed. Every metric here is "higher = the claimed direction" (failures enter as
    ``not_failed``), so Δ > 0 is what the paper claims."""
    joined = pd.concat({"mine": mine, "base": base}, axis=1, join="inner").sort_index().reset_index()
    if joined.empty:
        return pd.DataFrame(columns=["task", "seed", "mine", "base", "diff"])
    label = joined[list(strata)].astype(str).agg(" ".join, axis=1)
    out = pd.DataFrame({"task": label, "seed": joined["seed"], "mine": joined["mine"], "base": joined["base"]})
    return out.assign(diff=out["mine"] - out["base"]).reset_index(drop=True)


def pairs(runs: pd.DataFrame, method: str, reference: str, metric: Metric) -> pd.DataFrame:
    """``method`` vs ``reference`` on ``metric`` over (size, noise, task, seed), stratified by (size, noise, task)."""
    keys = [*CELL, "seed"]
    return join(values(runs, method, metric.column, keys), values(runs, reference, metric.column, keys), CELL)


def run_family(comparisons: Sequence[tuple[str, Metric, pd.DataFrame]]) -> list[dict[str, Any]]:
    """Test each (label, metric, pairs); Holm over all of them (the claim's family); MDE and verdict per row."""
    rows = [{"comparison": label, "metric": metric, **pooled.compare(found)} for label, metric, found in comparisons]
    tested = [i for i, row in enumerate(rows) if row["pairs"]]
    adjusted = stats.holm([rows[i]["p_signflip"] for i in tested])
    need = stats.min_pairs(ALPHA, max(len(tested), 1))
    for i, row in enumerate(rows):
        row.update(p_holm=adjusted[tested.index(i)] if i in tested else math.nan, family=len(tested))
        same = [list(r["differences"]) for r in rows if r["metric"] == row["metric"] and r["pairs"]]
        sd, _ = stats.pooled_sd(same)
        mde = pooled.row_mde({"pairs_for_mark": need, "pooled_sd": sd}, row["pairs"]) if row["pairs"] else math.nan
        row["mde"] = mde if row["nonzero"] else math.nan  # no pair differs: nothing the test could detect
        row["verdict"], row["category"] = verdict(row)
    return rows


def verdict(row: dict[str, Any]) -> tuple[str, str]:
    """The module docstring's rule for one comparison: (text, category)."""
    metric: Metric = row["metric"]
    if not row["pairs"]:
        return "not tested here: no matched pairs", "not tested"
    if row["p_holm"] < ALPHA:
        return ("supported", "supported") if row["diff"] > 0 else ("not supported (significant, opposite)",
                                                                   "not supported")
    if not row["nonzero"]:
        return "inconclusive: every pair equal", "inconclusive"
    if row["diff"] <= 0 and math.isfinite(row["mde"]) and row["delta_high"] < row["mde"]:
        return (f"not supported (upper 95% end {metric.show(row['delta_high'])} < MDE "
                f"{metric.show(row['mde'], False)} {metric.unit})", "not supported")
    return f"inconclusive at MDE {metric.show(row['mde'], False)} {metric.unit}", "inconclusive"


def conclude(rows: list[dict[str, Any]], notes: list[str], facts: list[str] | None = None) -> Outcome:
    """A claim's verdict from its comparisons (the module docstring's rule)."""
    categories = [row["category"] for row in rows]
    if categories.count("not tested") == len(categories):
        return not_tested(["no matched runs (same size, noise, task and seed) of the methods compared"], notes)
    supported = f"{categories.count('supported')} of {len(rows)} comparisons supported"
    if rows and categories.count("supported") == len(rows):
        return Outcome(rows, f"supported ({supported})", "supported", notes, facts or [])
    failed = [r for r in rows if r["category"] == "not supported"]
    if failed:  # the reasons where they are few, else the comparisons (each row's verdict says why)
        reasons = [f"{r['comparison']}: {r['verdict'].removeprefix('not supported (').removesuffix(')')}"
                   if len(failed) <= 2 else r["comparison"] for r in failed]
        return Outcome(rows, f"not supported in {len(failed)} of {len(rows)} comparisons ({'; '.join(reasons)})",
                       "not supported", notes, facts or [])
    open_rows = [r for r in rows if r["category"] == "inconclusive"]
    mdes = [r["mde"] for r in open_rows if r["nonzero"]]
    units = {r["metric"] for r in open_rows if r["nonzero"]}
    reason = [f"MDE up to {next(iter(units)).show(max(mdes), False)} {next(iter(units)).unit}"] if len(units) == 1 \
        else ["MDE per comparison below"] if mdes else []
    equal = len(open_rows) - len(mdes)
    reason += [f"{equal} comparison{'s' if equal > 1 else ''} with every matched pair equal"] if equal else []
    unpaired = categories.count("not tested")
    reason += [f"{unpaired} comparison{'s' if unpaired > 1 else ''} without matched pairs"] if unpaired else []
    return Outcome(rows, f"inconclusive: {'; '.join(reason)} ({supported})", "inconclusive", notes, facts or [])


def not_tested(missing: list[str], notes: list[str] | None = None) -> Outcome:
    return Outcome([], "not tested here: " + "; ".join(missing), "not tested", notes or [])

"""The claims of the seed papers, declared once (:data:`CLAIMS`), each with the function that tests it on a runs
frame. The machinery and the verdict rule are in reproduction.py; the document in reproduction_doc.py.

Quoted claim text is the papers' abstracts (REPINA: Razdaibiedina et al., arXiv 2205.11603; MVCR: Liu et al.,
arXiv 2211.08794); where a claim is our reading of a paper's motivation rather than its words, the text says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reproduction import (
    BASELINES,
    CELL,
    COLLAPSE,
    MVCR,
    NOT_FAILED,
    OOD,
    REPINA,
    SCORE,
    STD,
    Claim,
    Metric,
    Outcome,
    block,
    conclude,
    join,
    not_tested,
    pairs,
    present,
    run_family,
    scored,
    values,
)

LOW = "a clean block of a total training size (n…)"
KSHOT = "a clean k-shot block (k… examples per class)"


def _missing(runs: pd.DataFrame, where: str, required: tuple[str, ...], variants: tuple[str, ...]) -> list[str]:
    """What a test needs and the runs lack: the block, any required method, every one of the variants."""
    if runs.empty:
        return [f"no runs in {where}"]
    gone = [m for m in required if m not in present(runs, required)]
    lacking = [f"no {', '.join(gone)} runs in {where}"] if gone else []
    if variants and not present(runs, variants):
        lacking.append(f"no {' or '.join(variants)} runs in {where}")
    return lacking


def _absent(runs: pd.DataFrame, methods: tuple[str, ...], where: str) -> list[str]:
    gone = [m for m in methods if m not in present(runs, methods)]
    return [f"{', '.join(gone)} runs" + ("" if where == "the records" else f" (in {where})")] if gone else []


def _versus(runs: pd.DataFrame, mine: list[str], references: list[str], metric: Metric = SCORE) -> list[tuple]:
    suffix = f", {metric.short}" if metric.short else ""
    return [(f"{m} − {r}{suffix}", metric, pairs(runs, m, r, metric)) for m in mine for r in references]


def _beats_all(runs: pd.DataFrame, variant: str, others: tuple[str, ...]) -> str:
    """The paper's "N of 13 tasks" count: tasks where the variant's mean score is above every other's mean."""
    means = runs.groupby(["task", "method"])["primary"].mean().unstack("method")
    complete = means.dropna(subset=[variant, *others])
    wins = sorted(complete.index[complete[variant] > complete[list(others)].max(axis=1)])
    return (f"{variant}: mean above all {len(others)} baselines' means on {len(wins)} of {len(complete)} tasks"
            + (f" ({', '.join(wins)})" if wins else "") + " (descriptive, no test; the paper: 10 of 13)")


def repina_in_domain(runs: pd.DataFrame) -> Outcome:
    data = scored(block(runs, kind="total"))
    missing = _missing(data, LOW, BASELINES, REPINA)
    if missing:
        return not_tested(missing)
    mine = present(data, REPINA)
    facts = [_beats_all(data, v, BASELINES) for v in mine]
    return conclude(run_family(_versus(data, mine, list(BASELINES))), _absent(data, REPINA, LOW), facts)


def repina_few_shot(runs: pd.DataFrame) -> Outcome:
    data = scored(block(runs, kind="kshot"))
    missing = _missing(data, KSHOT, (STD,), REPINA)
    if missing:
        return not_tested(missing)
    mine, references = present(data, REPINA), [STD, *present(data, BASELINES)]
    notes = _absent(data, REPINA, KSHOT) + _absent(data, BASELINES, KSHOT)
    return conclude(run_family(_versus(data, mine, references)), notes)


def _changes(runs: pd.DataFrame, method: str, noise: str) -> pd.Series:
    """noisy − clean score of ``method`` at ``noise``, per (size, task, seed): same seed, only the noise differs."""
    keys = ["size", "task", "seed"]
    clean = values(runs[runs["noise"] == "clean"], method, "primary", keys)
    noisy = values(runs[runs["noise"] == noise], method, "primary", keys)
    return (noisy - clean).dropna()


def repina_label_noise(runs: pd.DataFrame) -> Outcome:
    data = scored(runs)
    noisy = block(data, kind="any", noise=None)
    missing = _missing(noisy, "a block with label noise", (STD,), REPINA)
    if missing:
        return not_tested(missing)
    mine = present(noisy, REPINA)
    comparisons = []
    for noise in sorted(noisy["noise"].unique()):
        level = noisy[noisy["noise"] == noise]
        comparisons += [(f"{m} − {STD} at {noise}", SCORE, pairs(level, m, STD, SCORE)) for m in mine]
        comparisons += [(f"{m} − {STD}: noisy − clean at {noise}", SCORE,
                         join(_changes(data, m, noise), _changes(data, STD, noise), ["size", "task"]))
                        for m in mine]
    return conclude(run_family(comparisons), _absent(noisy, REPINA, "the noisy blocks"))


def repina_failures(runs: pd.DataFrame) -> Outcome:
    data = runs.assign(not_failed=(runs["status"] == "ok").astype(float))
    missing = _missing(data, "the records", (STD,), REPINA)
    if missing:
        return not_tested(missing)
    mine, references = present(data, REPINA), [STD, *present(data, BASELINES)]
    comparisons = _versus(data, mine, references, NOT_FAILED)
    facts = [_failure_counts(label, found) for label, _, found in comparisons]
    notes = _absent(data, REPINA, "the records") + _absent(data, BASELINES, "the records")
    return conclude(run_family(comparisons), notes, facts)


def _failure_counts(label: str, found: pd.DataFrame) -> str:
    mine, base = int((found["mine"] == 0).sum()), int((found["base"] == 0).sum())
    worse, better = int((found["diff"] < 0).sum()), int((found["diff"] > 0).sum())
    method, reference = label.split(" − ")
    return (f"{label}: {len(found)} matched runs; failed: {method} {mine}, {reference} {base}; discordant pairs: "
            f"only {method} failed {worse}, only {reference} failed {better}")


def repina_collapse(runs: pd.DataFrame) -> Outcome:
    found = [m for m in COLLAPSE if m.column in runs.columns and np.isfinite(runs[m.column].to_numpy(float)).any()]
    if not found:
        return not_tested(["no collapse metrics in the records (metrics.collapse is empty: the profile's "
                           "collapse probes were off)"])
    missing = _missing(runs, "the records", (STD,), REPINA)
    if missing:
        return not_tested(missing)
    mine = present(runs, REPINA)
    comparisons = [c for metric in found for c in _versus(runs, mine, [STD], metric)]
    notes = _absent(runs, REPINA, "the records") + [f"collapse metric {m.column}"
                                                      for m in COLLAPSE if m not in found]
    return conclude(run_family(comparisons), notes)


def _ood_values(runs: pd.DataFrame, method: str) -> pd.Series:
    """One value per (size, noise, task, OOD set, seed): the OOD sets' primary scores in long form."""
    columns = sorted(c for c in runs.columns if c.startswith("ood."))
    long = runs[runs["method"] == method].melt(id_vars=[*CELL, "seed"], value_vars=columns, var_name="ood_set",
                                               value_name="ood")
    long = long.assign(ood_set=long["ood_set"].str.removeprefix("ood."))
    return values(long.assign(method=method), method, "ood", [*CELL, "ood_set", "seed"])


def repina_ood(runs: pd.DataFrame) -> Outcome:
    columns = [c for c in runs.columns if c.startswith("ood.") and np.isfinite(runs[c].to_numpy(float)).any()]
    if not columns:
        return not_tested(["no OOD metrics in the records (no task of the grid names OOD sets, or the profile "
                           "turned them off)"])
    missing = _missing(runs, "the records", (STD,), REPINA)
    if missing:
        return not_tested(missing)
    mine = present(runs, REPINA)
    comparisons = [(f"{m} − {STD}", OOD, join(_ood_values(runs, m), _ood_values(runs, STD), [*CELL, "ood_set"]))
                   for m in mine]
    facts = [f"OOD sets: {', '.join(sorted(c.removeprefix('ood.') for c in columns))}"]
    return conclude(run_family(comparisons), _absent(runs, REPINA, "the records"), facts)


def _token(runs: pd.DataFrame) -> pd.Series:
    return runs["family"] == "token"


def mvcr_sequence(runs: pd.DataFrame) -> Outcome:
    data = scored(runs[~_token(runs)])
    kinds = [("total", LOW), ("kshot", KSHOT)]
    usable = [(kind, where) for kind, where in kinds if not _missing(block(data, kind=kind), where, (STD, MVCR), ())]
    if not usable:
        return not_tested([f"no {STD} and {MVCR} runs on a sequence-level task in {LOW} or {KSHOT}"])
    comparisons = [(f"{MVCR} − {STD}, {where.split(' (')[0].removeprefix('a clean ')}", SCORE,
                    pairs(block(data, kind=kind), MVCR, STD, SCORE)) for kind, where in usable]
    notes = [f"{STD} and {MVCR} runs (in {where}): that part not tested" for kind, where in kinds
             if (kind, where) not in usable]
    return conclude(run_family(comparisons), notes)


def mvcr_token(runs: pd.DataFrame) -> Outcome:
    data = scored(block(runs[_token(runs)], kind="any"))
    missing = _missing(data, "a clean block of a token-level task", (STD, MVCR), ())
    if missing:
        return not_tested(missing)
    return conclude(run_family(_versus(data, [MVCR], [STD])), [])


def mvcr_inference(runs: pd.DataFrame) -> Outcome:
    """Not a statistical test: every MVCR run's parameter count after unplugging must equal STD's on its task."""
    mvcr, std = runs[runs["method"] == MVCR], runs[runs["method"] == STD]
    missing = _missing(runs, "the records", (STD, MVCR), ())
    if missing:
        return not_tested(missing)
    counted = mvcr[np.isfinite(mvcr["inference_parameters"].to_numpy(float))]
    reference = std[np.isfinite(std["inference_parameters"].to_numpy(float))]
    if counted.empty or reference.empty:
        return not_tested(["no train_info.inference_parameters in the " + ("MVCR" if counted.empty else "STD")
                           + " records (written by runs from after the field was added)"])
    expected = reference.groupby("task")["inference_parameters"].agg(lambda v: sorted(set(v)))
    checked = counted[counted["task"].isin(expected.index)]
    equal = [v in p for p, v in zip(checked["task"].map(expected), checked["inference_parameters"], strict=True)]
    facts = [f"{task}: {STD} {', '.join(f'{int(v):,}' for v in expected[task])} parameters at inference; {MVCR} "
             + ", ".join(f"{int(v):,}" for v in sorted(set(group["inference_parameters"])))
             for task, group in checked.groupby("task")]
    unchecked = len(mvcr) - len(checked)
    outcome = Outcome([], "", "", [f"train_info.inference_parameters of {unchecked} {MVCR} runs or of {STD} on "
                                   "their task"]
                      if unchecked else [], facts)
    if not all(equal):
        outcome.verdict, outcome.category = f"not supported ({equal.count(False)} of {len(equal)} runs differ)", \
            "not supported"
    elif unchecked:
        outcome.verdict, outcome.category = f"inconclusive ({unchecked} {MVCR} runs not checked)", "inconclusive"
    else:
        outcome.verdict, outcome.category = f"supported (all {len(equal)} {MVCR} runs match {STD})", "supported"
    outcome.facts.insert(0, f"{len(equal)} {MVCR} runs checked against {STD} on the same task")
    return outcome


REPINA_PAPER = "REPINA (Razdaibiedina et al., arXiv 2205.11603)"
MVCR_PAPER = "MVCR (Liu et al., arXiv 2211.08794)"
CLAIMS: tuple[Claim, ...] = (
    Claim("R1", REPINA_PAPER, "“When evaluating in-domain performance, REPINA consistently outperforms other "
          "baselines on most tasks (10 out of 13).”",
          "Clean blocks of a total training size (n…): REPINA_I and REPINA_MLP each against each of the five "
          "baselines (STD++, LP-FT, L2-SP, SMART, R3F), test scores paired over (task, seed), all tasks pooled; "
          "plus the count of tasks where REPINA's mean beats all five baselines' means", repina_in_domain),
    Claim("R2", REPINA_PAPER, "“We also demonstrate its effectiveness in few-shot settings”",
          "Clean k-shot blocks: each REPINA variant against STD and each of the five baselines present, test scores "
          "paired over (size, task, seed), pooled", repina_few_shot),
    Claim("R3", REPINA_PAPER, "“… and robustness to label perturbation.”",
          "Blocks with label noise: each REPINA variant against STD at each noise level (test scores paired over "
          "(size, task, seed)), and its change from clean to noisy (noisy − clean, paired by seed) against STD's "
          "change", repina_label_noise),
    Claim("R4", REPINA_PAPER, "Fewer failed runs (our reading of the abstract: representation collapse “may "
          "result in instability”, which REPINA is proposed to reduce)",
          "Every final run: a run failed when its test score is not above the majority class's (or it diverged); "
          "each REPINA variant against STD and each baseline present, matched (size, noise, task, seed); exact "
          "McNemar test (two-sided binomial sign test on the discordant pairs); Δ = the reference's failure rate − "
          "REPINA's", repina_failures),
    Claim("R5", REPINA_PAPER, "“Our empirical findings show that our approach is significantly more effective at "
          "mitigating representation collapse.”",
          "Collapse metrics of every final run (our definitions: linear CKA with the pretrained encoder, probe "
          "transfer of the fine-tuned minus the pretrained encoder, effective rank; higher = less collapse): each "
          "REPINA variant against STD, paired over (size, noise, task, seed)", repina_collapse),
    Claim("R6", REPINA_PAPER, "Better out-of-distribution scores (our reading of the abstract: collapse “may result "
          "in … weak generalization”, which REPINA is proposed to reduce)",
          "The primary metric on each task's OOD test sets: each REPINA variant against STD, paired over (size, "
          "noise, task, OOD set, seed), pooled", repina_ood),
    Claim("M1", MVCR_PAPER, "“Our method demonstrates promising performance improvement across a wide range of "
          "sequence- and token-level low-resource NLP tasks.” (sequence level)",
          "Sequence-level tasks, clean: MVCR against STD, test scores paired over (size, task, seed), pooled, once "
          "in the total-size (n…) blocks and once in the k-shot blocks", mvcr_sequence),
    Claim("M2", MVCR_PAPER,
          "The same sentence, token level: “… sequence- and token-level low-resource NLP tasks.”",
          "Token-level tasks, clean: MVCR against STD, test scores paired over (size, task, seed), pooled",
          mvcr_token),
    Claim("M3", MVCR_PAPER, "“The autoencoders are plugged out after fine-tuning, so our method does not add extra "
          "parameters or increase computation cost during inference.”",
          "The parameter count of the model scored on test (train_info.inference_parameters) of every MVCR run "
          "against STD's on the same task; supported only if every run matches (parameters only: inference compute "
          "is not measured)", mvcr_inference),
)


def evaluate(runs: pd.DataFrame) -> list[tuple[Claim, Outcome]]:
    return [(claim, claim.evaluate(runs)) for claim in CLAIMS]

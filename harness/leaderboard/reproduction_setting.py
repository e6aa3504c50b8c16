""""How our setting differs from the papers" in results/REPRODUCTION.md: one item per difference, the varying
numbers read from the records (runs frame), the cell summaries and the code (method configs, task specs, the model's
config); the papers' side and what each difference may change are prose of this template."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .loading import phase_exceptions, size_order

MAY = " May change:"


def _values(column: pd.Series) -> str:
    """The distinct finite values of a numeric column, ascending, as integers where they are whole."""
    found = sorted({float(v) for v in column if isinstance(v, (int, float)) and math.isfinite(v)})
    return "/".join(f"{v:g}" for v in found) or "not recorded"


def _per(runs: pd.DataFrame, by: str, column: str) -> str:
    return "; ".join(f"{key} {_values(group[column])}" for key, group in runs.groupby(by, sort=True))


@cache
def model_config(name: str) -> dict[str, Any]:
    """The model's config.json where the name resolves to a local checkpoint (the packaged MiniLM does), else {}."""
    from regbench.harness.run.model import resolve_model_path

    path = Path(resolve_model_path(name)) / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def model(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    from regbench.harness.run.model import model_identity
    from regbench.regularizers.mvcr import MVCRConfig, ae_layers, scaled_widths

    names = sorted(set(runs["model"].dropna()))
    parts, reference = [], MVCRConfig()
    ref_layers = [int(v) for v in reference.reference_layers.split(",")]
    ref_widths = [int(v) for v in reference.hae_widths.split(",")]
    for name in names:
        config = model_config(name)
        depth, hidden = config.get("num_hidden_layers"), config.get("hidden_size")
        shape = (f"{depth} layers, hidden size {hidden}; MVCR's AEs therefore in layers "
                 f"{ae_layers(depth, len(ref_layers), ref_layers, reference.reference_depth)} with widths "
                 f"{scaled_widths(ref_widths, hidden, reference.reference_hidden)}" if depth and hidden
                 else "shape not available here")
        parts.append(f"{name} ({model_identity(name)}: {shape})")
    std = runs[runs["method"] == "std"]
    count = _values(std["inference_parameters"]) if "inference_parameters" in std else "not recorded"
    return (f"**Model.** Ours: {'; '.join(parts) or 'not recorded'}; parameters at inference (STD runs): {count}. "
            f"The papers fine-tune larger BERT/RoBERTa-class encoders; MVCR's reference configuration is for "
            f"{reference.reference_depth}-layer models of hidden size {reference.reference_hidden} (AE layers "
            f"{ref_layers}, widths {ref_widths}).{MAY} a small sentence-embedding encoder has less capacity to "
            "overfit or collapse and starts from representations trained for mean pooling, so gains reported on "
            "large encoders may shrink, vanish or reverse here.")


def tasks(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    from regbench.harness.leaderboard.loading import task_meta

    listed = ", ".join(f"{t} ({task_meta(t)['family']}, {_primary(t)})" for t in sorted(runs["task"].unique()))
    return (f"**Tasks and metrics.** Ours: {runs['task'].nunique()} tasks (family, primary metric): {listed}. "
            "REPINA reports 13 tasks (GLUE and six more datasets), MVCR a range of sequence- and token-level "
            f"tasks, each with its own metric choices.{MAY} \"most tasks\" is counted over a different, smaller set; "
            "a task-specific effect can dominate a pooled comparison over few tasks.")


@cache
def _primary(task: str) -> str:
    from regbench.benchmarks.taskspec import get_task

    try:
        return "+".join(get_task(task).primary)
    except Exception:  # noqa: BLE001 — a task not registered here
        return "primary metric not known here"


def sizes(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    found = sorted(runs["size"].unique(), key=size_order)
    listed = "; ".join(f"{s}: {_values(runs.loc[runs['size'] == s, 'train_examples'])} training examples"
                       for s in found)
    rules = runs.dropna(subset=["split_rule"]).groupby("split_rule")["task"].agg(lambda t: ", ".join(sorted(set(t))))
    splits = " | ".join(f"{rule} ({names})" for rule, names in rules.items())
    return (f"**Training-set sizes and splits.** Ours: {listed} (k… = per class, n… = in total). Splits: "
            f"{splits or 'not recorded'}. The papers use their own training-set sizes and splits."
            f"{MAY} regularizers that help most with little data look better or worse depending on the "
            "size; a dev set carved from a small training pool makes model selection noisier.")


NO_LEARNING_MARGIN = 0.05  # a trial whose dev score ends this close to the majority class's rate did not learn


def _clean_trials(runs: pd.DataFrame, tuning: pd.DataFrame) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(method, parameters, did not learn) for every finished tuning trial of the clean blocks: a trial did not learn
    when its best dev score stayed within 5 points of the task's majority-class rate. The clean test set's majority
    rate stands in for dev's; noisy blocks are left out because label noise pulls every dev score towards chance."""
    chance = runs.groupby("task")["majority_test"].median() if not runs.empty else pd.Series(dtype=float)
    for cell in tuning[tuning["noise"] == "clean"].itertuples() if not tuning.empty else []:
        level = chance.get(cell.task, math.nan)
        if not math.isfinite(level):
            continue
        for trial in cell.trials:
            if trial.get("state") == "COMPLETE":
                value = trial.get("value")
                yield cell.method, trial.get("params") or {}, value is not None and value <= level + NO_LEARNING_MARGIN


def trials_without_learning(runs: pd.DataFrame, tuning: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Per method, over the clean blocks' tuning trials: (trials that did not learn, trials)."""
    counts: dict[str, tuple[int, int]] = {}
    for method, _, stuck in _clean_trials(runs, tuning):
        before = counts.get(method, (0, 0))
        counts[method] = (before[0] + stuck, before[1] + 1)
    return counts


def dead_ranges(runs: pd.DataFrame, tuning: pd.DataFrame, method: str) -> list[str]:
    """For each of the method's own numeric hyperparameters (not the shared LR): the part of its searched range
    holding every clean trial that did not learn — from the smallest such value up, or from the largest down,
    whichever side holds fewer trials that learned — with how many trials there did not learn, and how many
    trials lie outside it (none of which failed to learn). Not stated when no trial lies outside."""
    trials = [(params, stuck) for m, params, stuck in _clean_trials(runs, tuning) if m == method]
    names = sorted({k for params, _ in trials for k, v in params.items() if k != "lr" and _is_number(v)})
    found = []
    for name in names:
        values = [(float(p[name]), stuck) for p, stuck in trials if _is_number(p.get(name))]
        dead = [v for v, stuck in values if stuck]
        if not dead:
            continue
        sides = [(f"≥ {min(dead):.2g}", [(v, s) for v, s in values if v >= min(dead)]),
                 (f"≤ {max(dead):.2g}", [(v, s) for v, s in values if v <= max(dead)])]
        label, inside = min(sides, key=lambda side: sum(not s for _, s in side[1]))
        if len(inside) < len(values):
            found.append(f"{method}'s {name} {label}: {len(dead)} of {len(inside)} trials did not learn, "
                         f"0 of the {len(values) - len(inside)} outside")
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def seeds_and_tuning(runs: pd.DataFrame, tuning: pd.DataFrame) -> str:
    budget = _values(tuning["budget"]) if not tuning.empty else "unknown (no cell summaries)"
    stuck = trials_without_learning(runs, tuning)
    listed = "; ".join(f"{m} {d}/{n}" for m, (d, n) in sorted(stuck.items())) or "no clean-block trials recorded"
    worst = sorted((m for m, (d, n) in stuck.items() if n and d / n >= 0.25), key=lambda m: -stuck[m][0] / stuck[m][1])
    ranges = [text for method in worst for text in dead_ranges(runs, tuning, method)]
    wasted = (f"{', '.join(worst)}: a quarter of their trials or more did not learn" + "".join(f"; {r}" for r in ranges)
              if worst else "none here: no method lost a quarter of its trials")
    return (f"**Seeds and tuning.** Ours: {runs['seed'].nunique()} seeds per cell, trials per cell {budget}, the "
            "same trial budget and learning-rate range for every method plus each method's own 1–3 parameters, "
            "tuned on a separate seed that is never reported; tuning trials of the clean blocks that did not learn "
            f"(best dev score within {NO_LEARNING_MARGIN * 100:g} points of the majority class's rate): {listed}. "
            "The papers tune and repeat runs their own way."
            f"{MAY} few trials under-tune methods with more hyperparameters or ranges that are partly dead on this "
            f"model ({wasted}); "
            "few seeds widen every interval, which the MDE of each comparison states.")


def schedule(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    phases = phase_exceptions(runs)
    return (f"**Training schedule.** Ours: epochs per method {_per(runs, 'method', 'epochs')}; batch size "
            f"{_values(runs['batch_size'])}; maximum length {_values(runs['max_length'])} tokens. Exceptions to the "
            f"equal protocol: {phases or 'none'}. The papers' schedules and lengths are their own."
            f"{MAY} short schedules favour methods that converge fast; truncation removes evidence on long inputs.")


def test_sets(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    return (f"**Test sets.** Ours: test examples per task {_per(runs, 'task', 'test_size')}, capped at "
            f"{_values(runs['max_test_examples'])} examples (a fixed stratified subsample). The papers' evaluation "
            f"sets are their own, not these subsamples.{MAY} capped test sets add sampling noise to each score "
            "(intervals are wider than the papers' would be).")


def noise_and_failure(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    levels = sorted(set(runs.loc[runs["noise"] != "clean", "noise"]))
    return (f"**Label noise and failed runs.** Ours: label-noise levels {', '.join(levels) or 'none in these records'}"
            " (the same noisy labels for every method at a seed); a run failed when its test score is not above the "
            "majority class's on the clean test set, or it diverged. REPINA's label perturbation and its notion of "
            f"an unstable run are its own.{MAY} robustness and failure counts depend on how noise is injected and "
            "where the failure threshold lies.")


def representations(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    collapse = [c.removeprefix("collapse.") for c in runs.columns if c.startswith("collapse.")
                and np.isfinite(runs[c].to_numpy(float)).any()]
    ood = sorted(c.removeprefix("ood.") for c in runs.columns if c.startswith("ood.")
                 and np.isfinite(runs[c].to_numpy(float)).any())
    with_collapse = int(runs[[f"collapse.{c}" for c in collapse]].notna().any(axis=1).sum()) if collapse else 0
    return (f"**Collapse and OOD measures.** Ours: collapse metrics in {with_collapse} of {len(runs)} runs "
            f"({', '.join(sorted(collapse)) or 'none'}; our definitions: linear CKA and probe transfer against the "
            f"pretrained encoder, effective rank); OOD sets: {', '.join(ood) or 'none in these records'}. REPINA's "
            "own collapse metrics were not recovered (METHODS.md); any OOD evaluation of the papers is their own."
            f"{MAY} a collapse claim can hold for one definition and not another; OOD gains depend on the shift "
            "chosen.")


def methods(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    from regbench.regularizers.mvcr import MVCRConfig

    config = MVCRConfig()
    return (f"**Method details.** Ours: MVCR without the reference script's Mixout and dropout 0 (that variant is "
            f"mvcr+mixout), reconstruction loss masked on padding, AE warm-up {config.warmup_fraction_sequence:.0%} "
            f"(sequence) / {config.warmup_fraction_token:.0%} (token) of the epochs but at least "
            f"{config.min_warmup_epochs}, added to them; REPINA_MLP's φ is our design (z + a one-hidden-layer GELU "
            f"MLP, zero-initialised output) and λ is tuned. Methods in these records: "
            f"{', '.join(sorted(runs['method'].unique()))}.{MAY} implementation choices the papers leave open can "
            "move a method's score by more than the effects tested here.")


def statistics(runs: pd.DataFrame, _: pd.DataFrame) -> str:
    return ("**Standard of evidence.** Ours: exact paired tests over matched seeds, Holm over each claim's "
            "comparisons, 95% intervals and the minimum detectable effect stated for every comparison. The papers' "
            f"claims rest on their own reported scores.{MAY} a gain of the size the papers report can be real and "
            "still be \"inconclusive\" here when it is below our MDE.")


ITEMS: tuple[Callable[[pd.DataFrame, pd.DataFrame], str], ...] = (
    model, tasks, sizes, seeds_and_tuning, schedule, test_sets, noise_and_failure, representations, methods,
    statistics)


def differences(runs: pd.DataFrame, tuning: pd.DataFrame) -> list[str]:
    return [item(runs, tuning) for item in ITEMS]

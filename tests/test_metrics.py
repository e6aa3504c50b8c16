"""The metric table: hand-computed values, the edge cases the harness relies on, values pinned bit for bit to the
evaluate.Metric modules it replaced, its evaluate interface, and the offline/no-disk contract."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score

from regbench.benchmarks.metrics import METRIC_NAMES, METRICS, compute_metrics, get_metric, load_metric
from regbench.benchmarks.metrics.evaluate_module import TableMetric
from regbench.benchmarks.taskspec import METRIC_OUTPUTS
from regbench.harness.core.errors import ConfigError

PREDS, REFS = [0, 1, 1], [0, 1, 0]  # TP=1 TN=1 FP=1 FN=0


def score(name: str, predictions, references) -> dict[str, float]:
    """Through the table (the harness's path), checked against the evaluate interface on the same inputs."""
    result = get_metric(name).compute(predictions, references)
    assert _same(result, load_metric(name).compute(predictions=predictions, references=references))
    return result


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and bit-equal values (NaN equal to NaN)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or math.isnan(a[k]) and math.isnan(b[k]) for k in a)


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
    metric = TableMetric("f1", keep_in_memory=True)
    result = metric.compute(predictions=[0, 2, 1], references=[0, 1, 1], average="micro")
    assert result == {"f1_micro": pytest.approx(2 / 3)}
    assert get_metric("f1").compute([0, 2, 1], [0, 1, 1], average="micro") == result


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
    assert set(METRIC_NAMES) == set(METRIC_OUTPUTS) == set(METRICS)


def test_compute_metrics_merges_keys() -> None:
    assert compute_metrics(["accuracy", "f1", "matthews_correlation"], PREDS, REFS) == {
        "accuracy": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "matthews_correlation": pytest.approx(0.5)}
    assert set(compute_metrics(["pearsonr", "spearmanr"], [1.0, 2.0, 4.0], [1.0, 3.0, 2.0])) == {"pearson", "spearmanr"}


def test_load_metric_reuses_one_instance() -> None:
    assert load_metric("f1") is load_metric("F1")
    assert load_metric("f1_macro") is not load_metric("f1")


@pytest.mark.parametrize("lookup", [load_metric, get_metric, lambda name: compute_metrics([name], [0], [0])])
def test_unknown_metric_suggests_the_closest_name(lookup) -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'acuracy'; did you mean 'accuracy'.*\? \(known: .*seqeval"):
        lookup("acuracy")


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
    code = ("from regbench.benchmarks.metrics import compute_metrics, load_metric\n"
            "for _ in range(2): print(compute_metrics(['accuracy', 'f1_macro'], [0, 1, 1], [0, 1, 0]))\n"
            "print(load_metric('f1_macro').compute(predictions=[0, 1, 1], references=[0, 1, 0]))\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.count("'f1_macro'") == 3
    assert [path for path in (tmp_path / "hf").rglob("*") if path.is_file()] == []


def golden_cases() -> dict[str, list[tuple[list, list]]]:
    """Fixed inputs per metric: label ids, float32 regression outputs (as a model gives them), IOB2 and POS tags."""
    labels3 = ([(i * 7 + i // 5) % 3 for i in range(40)], [(i * 5 + 1) % 3 for i in range(40)])
    labels2 = ([(i * i + 3) % 2 for i in range(25)], [(i // 3) % 2 for i in range(25)])
    y = [math.sin(i) * 2.5 + 2.5 for i in range(30)]
    scores = ([float(np.float32(math.cos(i * 0.7) + 0.8 * v)) for i, v in enumerate(y)], y)
    ties = ([round(v) for v in scores[0]], [round(v, 1) for v in y])
    tags_ref = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], ["O", "B-ORG", "I-ORG", "I-ORG"],
                ["B-MISC", "O", "B-PER", "O", "B-LOC"], ["O", "O", "I-ORG", "O"]]
    tags_pred = [["B-PER", "I-PER", "O", "B-LOC", "O", "O"], ["O", "B-ORG", "I-ORG", "O"],
                 ["B-MISC", "O", "B-ORG", "O", "B-LOC"], ["O", "B-PER", "I-PER", "O"]]
    pos_ref = [["DET", "NOUN", "VERB", "ADP", "DET", "NOUN"], ["PRON", "VERB", "ADV"], ["NOUN"]]
    pos_pred = [["DET", "NOUN", "NOUN", "ADP", "DET", "ADJ"], ["PRON", "VERB", "ADV"], ["VERB"]]
    return {
        "accuracy": [labels3, labels2], "f1": [labels2], "f1_macro": [labels3, labels2],
        "matthews_correlation": [labels3, labels2], "pearsonr": [scores, ties], "spearmanr": [scores, ties],
        "seqeval": [(tags_pred, tags_ref)], "token_accuracy": [(pos_pred, pos_ref), (tags_pred, tags_ref)],
    }


# What the seven evaluate.Metric modules this table replaced (accuracy.py … token_accuracy.py, removed in the same
# change) returned on golden_cases(); the table and its evaluate interface matched them bit for bit there, and on
# 354 randomised cases (lists and arrays, constant predictions, ties, NaN correlations). The Pearson values carry
# float32 precision: those modules scored regression on float32 arrays (see metrics._cast).
GOLDEN = {
    "accuracy": [{"accuracy": 0.325}, {"accuracy": 0.32}],
    "f1": [{"f1": 0.32}],
    "f1_macro": [{"f1_macro": 0.32052545155993434}, {"f1_macro": 0.32}],
    "matthews_correlation": [{"matthews_correlation": -0.01531409729579222},
                             {"matthews_correlation": -0.358974358974359}],
    "pearsonr": [{"pearson": 0.9108318090438843}, {"pearson": 0.90228670835495}],
    "spearmanr": [{"spearmanr": 0.9110122358175751}, {"spearmanr": 0.8972397165148575}],
    "seqeval": [{"precision": 0.42857142857142855, "recall": 0.42857142857142855, "f1": 0.42857142857142855,
                 "accuracy": 0.7368421052631579, "f1_LOC": 0.5, "f1_MISC": 1.0, "f1_ORG": 0.0, "f1_PER": 0.5}],
    "token_accuracy": [{"token_accuracy": 0.7}, {"token_accuracy": 0.7368421052631579}],
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_values_are_bit_identical_to_the_replaced_evaluate_modules(name: str) -> None:
    for (preds, refs), expected in zip(golden_cases()[name], GOLDEN[name], strict=True):
        assert score(name, preds, refs) == expected  # exact: no approx
        assert compute_metrics([name], preds, refs) == expected
        if get_metric(name).inputs != "tags":  # a model's outputs arrive as lists or as arrays
            assert score(name, np.asarray(preds), np.asarray(refs)) == expected

"""OOD evaluation: label mapping, capping, training-overlap exclusion, prediction maps, and the run record."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mlflow.tracking import MlflowClient

from regbench.benchmarks.data import encode_split
from regbench.benchmarks.taskspec import get_task, parse_task
from regbench.harness.api import run
from regbench.harness.core.errors import ConfigError, DataError
from regbench.harness.post.ood import check_ood, evaluate_ood, map_label, ood_features
from regbench.harness.run.model import TaskModel, load_pretrained

TINY = "tiny-random-bert"


def _tokenizer():
    return load_pretrained(TINY).tokenizer


def test_yelp_polarity_mapping_drops_three_stars_and_splits_the_rest():
    sst2 = get_task("sst2")
    assert [map_label(sst2, "yelp_polarity", y) for y in range(5)] == [0, 0, None, 1, 1]
    features, info = ood_features(sst2, "yelp_polarity", _tokenizer(), 64, None, set(), max_examples=None)
    assert info["dropped_unmapped"] == 200 and info["examples"] == 800  # USB's Yelp-5 test subset is balanced
    assert {f["labels"] for f in features} == {0, 1}
    assert sum(f["labels"] for f in features) == 400


def test_cap_is_a_fixed_stratified_subsample_and_overlap_is_excluded(data_dir):
    sst2, tokenizer = get_task("sst2"), _tokenizer()
    first, info = ood_features(sst2, "imdb", tokenizer, 64, data_dir, set(), max_examples=50)
    again, _ = ood_features(sst2, "imdb", tokenizer, 64, data_dir, set(), max_examples=50)
    assert info["examples"] == 50 == len(first) and [f["idx"] for f in first] == [f["idx"] for f in again]
    assert sum(f["labels"] for f in first) == 25  # stratified: the balanced test subset stays balanced
    trained_on = {tuple(f["input_ids"]) for f in first[:5]}
    _, info = ood_features(sst2, "imdb", tokenizer, 64, data_dir, trained_on, max_examples=None)
    assert info["excluded_train_overlap"] == 5 and info["examples"] == 995


def _always(task_type: str, num_labels: int, label: int) -> TaskModel:
    """A tiny model whose head predicts ``label`` everywhere (bias dominates, weights zero)."""
    model = TaskModel(load_pretrained(TINY), task_type, num_labels)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.bias[label] = 10.0
    return model


def test_evaluate_ood_scores_each_set_with_the_task_metrics(data_dir):
    results = evaluate_ood(_always("classification", 2, 1), get_task("sst2"), _tokenizer(), 64, data_dir,
                           max_examples=40)
    assert set(results) == {"imdb", "cr", "yelp_polarity"}
    for name in ("imdb", "yelp_polarity"):  # balanced sets: always "positive" is right half the time
        assert results[name]["accuracy"] == pytest.approx(0.5) and results[name]["examples"] == 40
    assert results["yelp_polarity"]["primary"] == results["yelp_polarity"]["accuracy"]


def test_conll_misc_predictions_are_read_as_o_on_wikiann(data_dir):
    conll = get_task("conll2003")
    as_misc = evaluate_ood(_always("token_classification", 9, 7), conll, _tokenizer(), 64, data_dir, max_examples=20)
    scores = as_misc["wikiann_en"]
    assert scores["precision"] == 0.0 and scores["recall"] == 0.0  # every B-MISC became O: no predicted entity
    assert 0.3 < scores["accuracy"] < 1.0  # = the share of O tags; unmapped MISC predictions would score 0
    as_per = evaluate_ood(_always("token_classification", 9, 1), conll, _tokenizer(), 64, data_dir, max_examples=20)
    assert as_per["wikiann_en"]["precision"] > 0.0 and "f1_PER" in as_per["wikiann_en"]


def test_check_ood_reports_sizes_and_rejects_bad_maps(data_dir):
    assert check_ood(get_task("sst2"), data_dir) == "ood: imdb 1000, cr 755, yelp_polarity 800"
    base = {"name": "t", "version": 1, "type": "classification", "source": {"mirror": "glue/sst2"},
            "splits": {"train": "train", "test": "validation"}, "text_columns": ["sentence"], "label_column": "label",
            "num_labels": 2, "metrics": ["accuracy"], "primary": ["accuracy"]}
    partial = parse_task({**base, "ood": {"y": {"task": "yelp5", "label_map": {0: 0, 1: 0}}}}, "t.yaml")
    with pytest.raises(DataError, match=r"t.yaml: ood.y.label_map has no entry for label [234]"):
        check_ood(partial, data_dir)
    wrong_type = parse_task({**base, "ood": {"s": {"task": "stsb"}}}, "t.yaml")
    with pytest.raises(ConfigError, match=r"t.yaml: ood.s uses task 'stsb' of type regression"):
        check_ood(wrong_type, data_dir)
    with pytest.raises(ConfigError, match=r"ood.y.label_map must map label ids"):
        parse_task({**base, "ood": {"y": {"task": "yelp5", "label_map": {"pos": 1}}}}, "t.yaml")


def test_final_run_records_and_logs_ood_and_collapse_metrics(tiny_config, tmp_path):
    record = run(dataclasses.replace(tiny_config("sst2", epochs=1), track=True, experiment="extras"))
    ood = record["metrics"]["ood"]
    assert set(ood) == {"imdb", "cr", "yelp_polarity"} and ood["imdb"]["examples"] == 40  # capped like the test set
    collapse = record["metrics"]["collapse"]  # schema version 2 (version 1 kept it at the top level)
    assert 0.0 < collapse["metrics"]["cka"] <= 1.0 + 1e-9
    assert collapse["settings"]["transfer_task"] == "trec" and "probe_transfer_delta" in collapse["metrics"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    logged = client.get_run(record["run_info"]["mlflow_run_id"]).data.metrics
    assert logged["ood/imdb/accuracy"] == pytest.approx(ood["imdb"]["accuracy"])
    assert logged["collapse/cka"] == pytest.approx(collapse["metrics"]["cka"])


def test_extras_are_off_for_tuning_trials_and_when_disabled(tiny_config):
    trial = run(tiny_config("sst2", epochs=1, evaluate_test=False))
    assert trial["metrics"]["ood"] is None and trial["metrics"]["collapse"] is None
    off = run(tiny_config("sst2", epochs=1, ood=False, collapse=False))
    assert off["metrics"]["ood"] is None and off["metrics"]["collapse"] is None and off["metrics"]["test"] is not None


def test_ood_sets_never_contain_training_texts(data_dir):
    """MNLI and SNLI samples come from different corpora; nothing of one task's pool is the other's OOD set."""
    tokenizer = _tokenizer()
    pool = encode_split(get_task("mnli"), "train", tokenizer, 64, data_dir).features
    _, info = ood_features(get_task("mnli"), "snli", tokenizer, 64, data_dir,
                           {tuple(f["input_ids"]) for f in pool}, max_examples=None)
    assert info["excluded_train_overlap"] == 0 and info["examples"] == 1000

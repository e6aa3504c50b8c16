"""The tasks added for issue 7 (COPA, WiC, IMDB, Yelp-5, AG News, UD EWT POS) and one-line errors for bad task YAMLs."""

from __future__ import annotations

import pytest
import torch
import yaml

from regbench.benchmarks.data import encode_split, input_texts, load_split
from regbench.benchmarks.metrics import compute_metrics
from regbench.benchmarks.taskspec import TASKS, get_task, load_task_file, parse_task
from regbench.harness.cli import main
from regbench.harness.core.errors import ConfigError, DataError
from regbench.harness.run import batching
from regbench.harness.run.model import TaskModel, load_pretrained
from regbench.harness.validate import validate_task

TINY = "tiny-random-bert"
GOOD = {"name": "mytask", "version": 1, "type": "classification", "source": {"mirror": "glue/sst2"},
        "splits": {"train": "train", "test": "validation"}, "text_columns": ["sentence"], "label_column": "label",
        "num_labels": 2, "metrics": ["accuracy"], "primary": ["accuracy"]}


def test_at_least_23_tasks_are_listed(capsys):
    assert main(["ls", "tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 23
    assert any(line.startswith("copa ") and "multiple_choice" in line for line in lines)


def test_copa_encodes_one_pair_per_choice_and_the_model_scores_each(data_dir):
    task, tokenizer = get_task("copa"), load_pretrained(TINY).tokenizer
    features = encode_split(task, "test", tokenizer, 64, data_dir).features
    first = features[0]
    assert len(first["input_ids"]) == 2 and first["labels"] == 1
    text = tokenizer.decode(first["input_ids"][1])
    assert "what was the effect?" in text and "water flowed from the spout" in text  # (context, choice 2)
    batch = batching.collate(features[:3], tokenizer.pad_token_id)
    assert batch["input_ids"].shape[:2] == (3, 2) and batch["labels"].tolist() == [f["labels"] for f in features[:3]]
    logits = TaskModel(load_pretrained(TINY), "multiple_choice", 2)(**batch).logits
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_wic_marks_the_target_span_in_both_sentences(data_dir):
    task = get_task("wic")
    rows = load_split(task, "train", data_dir).dataset[:1]
    first, second = input_texts(task, rows)
    assert first == ["feel : You make me *feel* naked."]
    assert second == ["She *felt* small and insignificant."]


def test_ag_news_resplit_is_disjoint_fixed_and_complete(data_dir):
    task = get_task("ag_news")
    pool, test = load_split(task, "train", data_dir), load_split(task, "test", data_dir)
    assert (len(pool.dataset), len(test.dataset)) == (5700, 1900) and (pool.part, test.part) == ("pool", "test")
    texts_pool, texts_test = set(pool.dataset["text"]), set(test.dataset["text"])
    assert not texts_pool & texts_test
    assert load_split(task, "test", data_dir).dataset["text"] == test.dataset["text"]  # same seed, same cut
    tokenizer = load_pretrained(TINY).tokenizer
    assert len(encode_split(task, "train", tokenizer, 32, data_dir)) == 5700  # parts are cached apart


def test_ud_pos_uses_token_accuracy_with_integer_row_ids(data_dir):
    task = get_task("ud_en_ewt")
    assert task.num_labels == 18 and task.primary == ("token_accuracy",)
    features = encode_split(task, "test", load_pretrained(TINY).tokenizer, 64, data_dir).features
    assert isinstance(features[0]["idx"], int)  # the source's string sent_id column must not leak in
    assert compute_metrics(["token_accuracy"], [["NOUN", "VERB"], ["DET"]], [["NOUN", "NOUN"], ["DET"]]) == {
        "token_accuracy": pytest.approx(2 / 3)}


def _write(tmp_path, data, name="mytask"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "ranking"}, "type 'ranking' is not one of"),
        ({"type": "multiple_choice"}, "needs 'choice_columns'"),
        ({"splits": {"train": {"split": "test", "part": "pool"}, "test": "validation"}}, "no 'resplit"),
        ({"text_templates": ["{a}", "{b}", "{c}"]}, "'text_templates' must list 1..2"),
        ({"mark_spans": {"other": ["s", "e"]}}, "mark_spans names 'other'"),
    ],
)
def test_bad_yaml_fields_fail_on_load_with_one_line_naming_the_file(tmp_path, change, field):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(ConfigError, match=field) as info:
        load_task_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"label_column": "gold"}, "label_column needs column 'gold'"),
        ({"text_columns": ["text"]}, "text_columns needs column 'text'"),
        ({"num_labels": 1, "label_names": None},
         r"label_column 'label' of split '(train|test)' has label 1 outside 0..0"),
        ({"splits": {"train": "train", "test": "nosuch"}}, "splits.test: data file .*nosuch.parquet is missing"),
    ],
)
def test_bad_data_references_fail_validation_with_one_line_naming_the_file(tmp_path, data_dir, change, field):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(DataError, match=field) as info:
        validate_task(load_task_file(path), data_dir)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_yaml_dropped_into_a_user_dir_is_listed_validated_and_run(tmp_path, capsys, data_dir):
    _write(tmp_path, {**GOOD, "name": "my_sst2"}, "my_sst2")
    assert main(["ls", "tasks", "--tasks-dir", str(tmp_path)]) == 0
    assert "my_sst2" in capsys.readouterr().out
    assert main(["validate", "my_sst2", "--tasks-dir", str(tmp_path), "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.startswith("ok  my_sst2")
    assert TASKS.get("my_sst2").path.endswith("my_sst2.yaml")


def test_multiple_choice_parse_sets_the_number_of_choices():
    spec = parse_task({**GOOD, "type": "multiple_choice", "choice_columns": ["a", "b", "c"], "num_labels": None})
    assert spec.num_labels == 3 and spec.input_columns() == ["sentence", "a", "b", "c"]

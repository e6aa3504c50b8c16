from __future__ import annotations

import pytest
import yaml

from regbench.benchmarks.taskspec import TASKS, add_tasks_dir, load_task_file, parse_task
from regbench.harness.core.errors import ConfigError

BASE = {
    "name": "mytask", "version": 1, "type": "classification", "source": {"mirror": "glue/sst2"},
    "splits": {"train": "train", "test": "validation"}, "text_columns": ["sentence"], "label_column": "label",
    "num_labels": 2, "metrics": ["accuracy"], "primary": ["accuracy"],
}


def test_every_builtin_task_parses_with_a_version():
    for name, spec in TASKS.items():
        assert isinstance(spec.version, int) and spec.name == name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "ranking"}, "type 'ranking' is not one of"),
        ({"metrics": ["bleu"]}, "unknown metric 'bleu'"),
        ({"primary": ["f1"]}, "primary 'f1' is not an output of its metrics"),
        ({"version": "one"}, "version must be an integer"),
        ({"splits": {"train": "train"}}, "splits must map at least 'train' and 'test'"),
        ({"text_columns": []}, "'text_columns' must list"),
    ],
)
def test_invalid_yaml_fields_fail_with_one_line(change, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_task({**BASE, **change})
    assert "\n" not in str(info.value)


def test_missing_required_key_is_named():
    data = dict(BASE)
    del data["label_column"]
    with pytest.raises(ConfigError, match="missing required key 'label_column'"):
        parse_task(data)


def test_file_name_must_match_task_name(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(BASE))
    with pytest.raises(ConfigError, match="must be named mytask.yaml"):
        load_task_file(path)


def test_user_tasks_dir_is_picked_up(tmp_path):
    (tmp_path / "mytask.yaml").write_text(yaml.safe_dump(BASE))
    specs = add_tasks_dir(tmp_path)
    assert [s.name for s in specs] == ["mytask"]
    assert TASKS.get("mytask").source == {"mirror": "glue/sst2"}


def test_a_split_may_come_from_another_mirror_dir(data_dir):
    from regbench.benchmarks.data import load_split, split_source

    task = TASKS.get("qnli")
    assert split_source(task, "train")[:2] == ("subset_train", "glue_subsets/qnli")
    assert split_source(task, "test")[:2] == ("validation", "glue/qnli")
    assert load_split(task, "train", data_dir).source.endswith("glue_subsets/qnli/subset_train.parquet")


def test_split_mapping_needs_a_split_name():
    with pytest.raises(ConfigError, match="split 'train' is a mapping without 'split'"):
        parse_task({**BASE, "splits": {"train": {"mirror": "x"}, "test": "validation"}})

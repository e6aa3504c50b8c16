"""Each task type end to end on the tiny random BERT, determinism, the record, and MLflow logging."""

from __future__ import annotations

import dataclasses
import math

import pytest
from mlflow.tracking import MlflowClient

from regbench.harness.api import run
from regbench.harness.io import records
from regbench.harness.run.devices import resolve_device

TASK_TYPES = {"sst2": "accuracy", "rte": "accuracy", "stsb": "pearson", "conll2003": "f1"}


@pytest.mark.parametrize("task", sorted(TASK_TYPES))
def test_each_task_type_runs_end_to_end(tiny_config, task):
    record = run(tiny_config(task))
    records.validate_record(record)
    test = record["metrics"]["test"]
    assert TASK_TYPES[task] in test and not math.isnan(test["primary"]) or task == "stsb"
    assert record["run_info"]["status"] in {"ok", "failed"}
    asked = record["run_info"]["config"]["train"]["device"]
    assert record["meta_info"]["device"] == str(resolve_device(asked))  # the device it ran on, never "auto"
    assert len(record["train_info"]["dev_curve"]) == 2
    assert record["train_info"]["best_epoch"] in {1, 2}
    assert len(record["predictions"]["ids"]) == record["train_info"]["data"]["test_size"] == 40
    on_disk = records.read_record(record["_path"])
    assert on_disk["metrics"] == record["metrics"]


def test_same_seed_gives_bit_identical_results(tiny_config):
    first = run(tiny_config("rte"))
    second = run(tiny_config("rte"))
    assert first["metrics"] == second["metrics"]
    assert first["predictions"] == second["predictions"]
    assert first["train_info"]["epoch_losses"] == second["train_info"]["epoch_losses"]
    assert first["run_info"]["run_id"] == second["run_info"]["run_id"]
    assert first["_path"] != second["_path"]  # records are immutable: a re-run writes a new one


def test_different_seed_changes_the_split(tiny_config):
    a = run(tiny_config("sst2", seed=1))
    b = run(tiny_config("sst2", seed=2))
    assert a["train_info"]["data"]["train_ids_sha256"] != b["train_info"]["data"]["train_ids_sha256"]


def test_std_plus_plus_trains_twice_the_epochs_with_the_same_number_of_dev_evaluations(tiny_config):
    record = run(tiny_config("sst2", method="std++", epochs=1))
    info = record["train_info"]
    assert len(info["epoch_seconds"]) == 2 and info["steps"] == 2 * info["steps_per_epoch"]
    assert [p["epoch"] for p in info["dev_curve"]] == [2]  # one look at dev, at the end of its (longer) main phase


def test_mlflow_run_is_logged_and_queryable(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config("sst2"), track=True, experiment="e2e")
    record = run(config)
    uri = f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}"
    client = MlflowClient(uri)
    mlflow_run = client.get_run(record["run_info"]["mlflow_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["config.method.name"] == "std"
    assert mlflow_run.data.tags["status"] == record["run_info"]["status"]
    history = client.get_metric_history(mlflow_run.info.run_id, "dev/primary")
    assert [m.step for m in history] == [1, 2]
    assert mlflow_run.data.metrics["test/accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(mlflow_run.info.run_id)}
    assert {"record.json", "config.yaml"} <= artifacts


def _builtin_task_names() -> list[str]:
    from regbench.benchmarks.taskspec import builtin_tasks_dir

    return sorted(p.stem for p in builtin_tasks_dir().glob("*.yaml"))


@pytest.mark.parametrize("task", _builtin_task_names())
def test_every_builtin_task_trains_one_epoch(tiny_config, task):
    record = run(tiny_config(task, train_size=16, dev_size=8, max_test_examples=16, epochs=1))
    assert record["run_info"]["status"] in {"ok", "failed"}
    assert set(record["metrics"]["test"]) >= {"primary"}

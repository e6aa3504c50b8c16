"""MLflow tracking against a real SQLite store: params, batched metrics, artifacts, statuses, nesting, no CWD litter.

One store per module: creating a SQLite store runs MLflow's migrations (seconds); each test uses its own experiment.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
import yaml
from mlflow.tracking import MlflowClient

from regbench.harness.io import tracking


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("store") / "runs"
    return tracking.default_tracking_uri(out), out


def test_default_tracking_uri_is_absolute_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    uri = tracking.default_tracking_uri("rel/out")
    assert uri == f"sqlite:///{tmp_path.resolve() / 'rel' / 'out' / 'mlflow.db'}"
    assert (tmp_path / "rel" / "out").is_dir()


def test_artifact_location() -> None:
    assert tracking.artifact_location("sqlite:////data/x/mlflow.db") == "file:///data/x/mlartifacts"
    assert tracking.artifact_location("http://127.0.0.1:5000", "/data/art") == "file:///data/art"
    assert tracking.artifact_location("http://127.0.0.1:5000") is None


def test_params_metrics_artifacts_and_finished_status(store: tuple[str, Path]) -> None:
    uri, _ = store
    record = {"metrics": {"test": {"accuracy": 0.75}}, "nan": float("nan")}
    with tracking.RunTracker(uri, "basic", "rte/std/seed1", tags={"task": "rte"}) as tracker:
        tracker.log_params({"config": {"method": {"name": "std", "lambda": 0.1}, "lr": 2e-5}, "seed": 1, "empty": {}})
        for step in (1, 2, 3):
            tracker.log_metrics({"dev/primary": step / 10, "skipped": None}, step=step)
        tracker.log_dict_artifact(record, "record.json")
        tracker.log_dict_artifact({"train": {"epochs": 3}}, "config.yaml")
        tracker.set_tags({"status": "ok"})
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == tracker.experiment_id
    assert run.info.run_name == "rte/std/seed1"
    assert run.data.params == {"config.method.name": "std", "config.method.lambda": "0.1", "config.lr": "2e-05",
                               "seed": "1", "empty": "{}"}
    assert run.data.tags["task"] == "rte" and run.data.tags["status"] == "ok"
    history = client.get_metric_history(run.info.run_id, "dev/primary")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2), (3, 0.3)]
    assert "skipped" not in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"record.json", "config.yaml"}
    artifact_dir = Path(url2pathname(urlparse(run.info.artifact_uri).path))
    assert artifact_dir.is_relative_to(store[1] / "mlartifacts")
    assert yaml.safe_load((artifact_dir / "config.yaml").read_text()) == {"train": {"epochs": 3}}


def test_exception_marks_the_run_failed_and_propagates(store: tuple[str, Path]) -> None:
    uri, _ = store
    with pytest.raises(ValueError, match="boom"), tracking.RunTracker(uri, "failing", "r") as tracker:
        tracker.log_metrics({"loss": 0.5}, step=0)
        raise ValueError("boom")
    client = MlflowClient(uri)
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert [m.value for m in client.get_metric_history(tracker.run_id, "loss")] == [0.5]  # flushed anyway


def test_child_run_carries_the_parent_id(store: tuple[str, Path]) -> None:
    uri, _ = store
    with tracking.RunTracker(uri, "nested", "cell") as parent:
        for seed in (1, 2):
            with tracking.RunTracker(uri, "nested", f"seed{seed}", parent_run_id=parent.run_id) as child:
                child.log_metrics({"x": seed}, step=0)
    children = tracking.find_runs(uri, "nested", f"tags.`mlflow.parentRunId` = '{parent.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["seed1", "seed2"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.run_id}
    assert len(tracking.find_runs(uri, "nested")) == 3
    assert tracking.find_runs(uri, "no-such-experiment") == []


def test_batches_respect_mlflow_limits(store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    uri, _ = store
    calls: list[tuple[int, int]] = []
    original = MlflowClient.log_batch

    def counting(self: MlflowClient, run_id: str, metrics=(), params=(), tags=(), synchronous=None):
        calls.append((len(metrics), len(params)))
        return original(self, run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    with tracking.RunTracker(uri, "batches", "big") as tracker:
        tracker.log_params({f"p{i}": i for i in range(250)} | {"long": "x" * 10_000})
        for step in range(1500):
            tracker.log_metrics({"loss": float("nan") if step == 7 else step}, step=step)
        assert len(tracker._buffer) < 1000  # a full batch is sent as soon as it fills
    assert [p for _, p in calls if p] == [100, 100, 51]
    assert [m for m, _ in calls if m] == [1000, 500]
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert len(run.data.params["long"]) == 6000
    history = MlflowClient(uri).get_metric_history(tracker.run_id, "loss")
    assert len(history) == 1500 and math.isnan(history[7].value)


def test_non_numeric_metric_is_rejected_by_name(store: tuple[str, Path]) -> None:
    with tracking.RunTracker(store[0], "bad", "r") as tracker, pytest.raises(TypeError, match="'acc'"):
        tracker.log_metrics({"acc": "high"}, step=0)


def test_artifacts_never_land_in_the_working_directory(store: tuple[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    uri, out = store
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    extra = tmp_path / "notes.txt"
    extra.write_text("hello")
    monkeypatch.chdir(cwd)
    with tracking.RunTracker(uri, "cwd-check", "r") as tracker:
        tracker.log_dict_artifact({"a": 1}, "record.json")
        tracker.log_file_artifact(extra)
    assert list(cwd.iterdir()) == []
    artifact_uri = MlflowClient(uri).get_run(tracker.run_id).info.artifact_uri
    assert artifact_uri.startswith((out / "mlartifacts").as_uri())
    assert any(p.name == "notes.txt" for p in (out / "mlartifacts").rglob("*"))

"""The MLflow client side of tracking (see ``tracking.py``, through which the rest of regbench reaches this module).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.entities.lifecycle_stage import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)
from sqlalchemy.engine import make_url

_logger = logging.getLogger(__name__)
# Per-store chatter ("Creating initial MLflow database tables...", alembic's migration steps) at INFO; their
# warnings and errors still show.
logging.getLogger("alembic").setLevel(logging.WARNING)
# MLflow logs every SQLAlchemy OperationalError with its traceback and then raises it again as an MlflowException,
# which the CLI reports in one line (a full disk, a locked store): the logged copy would be a second, raw report.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


def connect(tracking_uri: str) -> MlflowClient:
    """The one place a tracking URI becomes a client (MLflow caches the store, so migrations run once per process).

    Boundary for multi-process grids: they must not share a SQLite file, and will hand out a loopback server URI.
    """
    return MlflowClient(tracking_uri)


def artifact_location(tracking_uri: str, artifact_root: str | Path | None = None) -> str | None:
    """Where a new experiment keeps artifacts: ``artifact_root``, else ``mlartifacts`` beside a SQLite store.

    None (for a server or another database) lets the store decide; MLflow's client-side default is relative to the
    working directory, so pass ``artifact_root`` for a non-SQLite database.
    """
    if artifact_root is not None:
        return Path(artifact_root).resolve().as_uri()
    if tracking_uri.startswith("sqlite:"):
        database = make_url(tracking_uri).database
        if database and database != ":memory:":
            return (Path(database).resolve().parent / "mlartifacts").as_uri()
    return None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts → dotted names (``config.method.name``), values as strings within MLflow's length limit."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_VAL_LENGTH]
    return flat


class RunTracker:
    """Context manager around one MLflow run; ends FINISHED, or FAILED when an exception escapes (and re-raises)."""

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, *, tags: Mapping[str, str] | None = None,
                 parent_run_id: str | None = None, artifact_root: str | Path | None = None,
                 key: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.artifact_root = artifact_root
        self.key = key  # runs with a key are unique per experiment: an earlier run with it is reattached
        self.client: MlflowClient | None = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._buffer: list[Metric] = []

    def __enter__(self) -> RunTracker:
        self.client = connect(self.tracking_uri)
        self.experiment_id = self._experiment_id(self.client)
        tags = {**{k: str(v) for k, v in self.tags.items()}, "mlflow.runName": self.run_name}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        if self.key:
            tags[KEY_TAG] = self.key
            found = runs_with_key(self.client, self.experiment_id, self.key)
            if found:  # an interrupted (or repeated) run with this key: reattach it instead of duplicating it
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                self.set_tags(tags)
                for extra in found[1:]:
                    self.client.set_terminated(extra.info.run_id, status="KILLED")
                return self
        self.run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=self.run_name).info.run_id
        if self.key:  # two workers may have created the same keyed run at once: keep the oldest, drop ours
            first = runs_with_key(self.client, self.experiment_id, self.key)[0].info.run_id
            if first != self.run_id:
                self.client.delete_run(self.run_id)
                self.run_id = first
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        failed = exc_type is not None
        try:
            self.flush()
        except Exception:
            if not failed:
                failed = True
                raise
            # another error is on its way to the user already; this one is its echo (a full disk, a dead server)
            _logger.debug("could not send the last metrics of MLflow run %s", self.run_id, exc_info=True)
        finally:
            self._terminate(RunStatus.FAILED if failed else RunStatus.FINISHED, quiet=exc_type is not None)

    def _terminate(self, status: int, quiet: bool) -> None:
        """Set the final status; while another exception propagates, a failure here must not replace it."""
        try:
            self._client().set_terminated(self._run_id(), status=RunStatus.to_string(status))
        except Exception:
            if not quiet:
                raise
            # a resumed grid reattaches the run by its key and ends it then
            _logger.debug("could not mark MLflow run %s as ended", self.run_id, exc_info=True)

    def _client(self) -> MlflowClient:
        if self.client is None or self.run_id is None:
            raise RuntimeError("RunTracker is used outside its `with` block")
        return self.client

    def _run_id(self) -> str:
        if self.run_id is None:
            raise RuntimeError("RunTracker is used outside its `with` block")
        return self.run_id

    def _experiment_id(self, client: MlflowClient) -> str:
        """Get or create the experiment; tolerate another process creating it first, revive a deleted one."""
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return client.create_experiment(
                    self.experiment, artifact_location=artifact_location(self.tracking_uri, self.artifact_root))
            except MlflowException:  # created concurrently: use theirs
                found = client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == LifecycleStage.DELETED:  # its name stays taken until `mlflow gc`
            _logger.warning("MLflow experiment %r was deleted; restoring it to log run %s", self.experiment,
                            self.run_name)
            client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) parameters in as few ``log_batch`` calls as MLflow's 100-per-batch limit allows."""
        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._client().log_batch(self._run_id(), params=items[start:start + MAX_PARAMS_TAGS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float | None], step: int) -> None:
        """Buffer metrics (None is skipped, NaN kept); sent by :meth:`flush`, at exit or when a batch is full."""
        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is None:
                continue
            try:
                self._buffer.append(Metric(key, float(value), now, int(step)))
            except (TypeError, ValueError):
                raise TypeError(f"metric {key!r} must be a number, got {value!r}") from None
        if len(self._buffer) >= MAX_METRICS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics, at most MLflow's 1000 per ``log_batch`` call."""
        while self._buffer:
            chunk = self._buffer[:MAX_METRICS_PER_BATCH]
            self._client().log_batch(self._run_id(), metrics=chunk)
            del self._buffer[:len(chunk)]

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self._client().log_batch(self._run_id(), tags=items[start:start + MAX_PARAMS_TAGS_PER_BATCH])

    def log_dict_artifact(self, obj: Any, artifact_file: str) -> None:
        """Store ``obj`` as YAML (``.yaml``/``.yml``) or JSON (anything else); non-JSON values become strings."""
        if artifact_file.endswith((".yaml", ".yml")):
            text = yaml.safe_dump(json.loads(json.dumps(obj, default=str)), sort_keys=True, allow_unicode=True)
        else:
            text = json.dumps(obj, sort_keys=True, indent=1, default=str)
        self._client().log_text(self._run_id(), text, artifact_file)

    def log_file_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._client().log_artifact(self._run_id(), str(path), artifact_path)


KEY_TAG = "regbench_key"


def runs_with_key(client: MlflowClient, experiment_id: str, key: str) -> list[Run]:
    """Runs tagged with this key, oldest first (so the first one is the one kept)."""
    found = client.search_runs([experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}'", max_results=100)
    return sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def close_runs_with_key(tracking_uri: str, experiment: str, key: str, status: str = "KILLED") -> int:
    """Mark unfinished runs with this key as ended (a trial whose worker died): never left RUNNING forever."""
    client = connect(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    stale = [r for r in runs_with_key(client, found.experiment_id, key) if r.info.status == "RUNNING"]
    for run in stale:
        client.set_terminated(run.info.run_id, status=status)
    return len(stale)


def find_runs(tracking_uri: str, experiment: str, filter_string: str = "") -> list[Run]:
    """All runs of an experiment matching an MLflow filter (every page, not only the first 1000)."""
    client = connect(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([found.experiment_id], filter_string=filter_string, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs

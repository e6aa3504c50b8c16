"""MLflow logging: one MLflow run per training run, for browsing in ``mlflow ui`` (records stay the truth).

Choices forced by MLflow 3.x here: the ``./mlruns`` file store is refused, so the default store is a SQLite file in
the output directory; per-step logging calls on SQLite are ~4x slower than batched ones, so metrics are buffered and
sent with ``log_batch``; a client-created experiment would put its artifacts under ``./mlartifacts`` of the working
directory, so experiments are created with ``<store dir>/mlartifacts`` as their artifact location. The client API
(not the fluent ``mlflow.start_run`` global) is used so several runs (a parent cell run and its children) can be
open in one process. Several processes must not share one SQLite file: :func:`connect` is the one place a URI
becomes a client, where multi-worker grids will route through a loopback ``mlflow server``.

This module checks tracking URIs; the MLflow client code lives in ``mlflow_runs.py`` and is reached through this
module's attributes (``tracking.RunTracker``, ``tracking.connect``, …), which import it on first use: importing
MLflow takes seconds (results/perf/startup.md), and a run with ``--no-track`` or a listing never needs it.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..core.errors import ConfigError, ServiceError, first_line
from ..core.urls import mask_url as masked

if TYPE_CHECKING:
    from .mlflow_runs import (  # noqa: F401
        KEY_TAG,
        RunTracker,
        artifact_location,
        close_runs_with_key,
        connect,
        find_runs,
        flatten,
        runs_with_key,
    )

# What ``tracking.<name>`` finds in mlflow_runs.py, imported on first access (PEP 562).
_MLFLOW_RUNS = ("KEY_TAG", "RunTracker", "artifact_location", "close_runs_with_key", "connect", "find_runs", "flatten",
                "runs_with_key")

CONNECT_SECONDS = 5.0  # how long check_tracking_uri waits for a tracking server or database to answer
SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")  # what MLflow 3 stores accept
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


def default_tracking_uri(out_dir: str | Path) -> str:
    """``sqlite:///<absolute out_dir>/mlflow.db``: absolute, so the store does not depend on the working directory."""
    directory = Path(out_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def check_tracking_uri(uri: str, timeout: float | None = None) -> None:
    """Fail in one line, within ``timeout`` seconds (default CONNECT_SECONDS) and before any training, when nothing
    can take the runs: an unknown scheme, a server or database that does not answer, a SQLite file in a missing
    folder."""
    timeout = CONNECT_SECONDS if timeout is None else timeout
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    way_out = "start it, or use --tracking-uri sqlite:///<dir>/mlflow.db (a local store) or --no-track"
    if scheme not in SCHEMES:
        raise ConfigError(f"--tracking-uri {masked(uri)}: unknown scheme {scheme or '(none)'!r}; expected "
                          "http(s)://host:port (an MLflow server), sqlite:///<dir>/mlflow.db (a local store), a "
                          "database URL, or --no-track")
    if scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
                return
        except urllib.error.HTTPError as err:
            if err.code in (401, 403):  # an authenticating proxy answers: MLflow's client brings the credentials
                return
            raise ServiceError(f"the tracking server {masked(uri)} answers GET /health with HTTP {err.code}: it is "
                               f"not an MLflow server; {way_out}") from None
        except (OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise ServiceError(f"the MLflow tracking server {masked(uri)} does not answer within {timeout:g} s "
                               f"({first_line(reason)}); {way_out}") from None
    elif scheme != "databricks":  # Databricks resolves its host from a profile: MLflow checks that itself
        _check_database(uri, scheme, timeout, way_out)


def _check_database(uri: str, scheme: str, timeout: float, way_out: str) -> None:
    """A SQLite file must be creatable where it is named; a database server must take a connection."""
    from sqlalchemy.engine import make_url  # seconds to import; needed only when tracking to a database
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
        port = url.port
    except (ArgumentError, ValueError) as err:
        raise ConfigError(f"--tracking-uri {masked(uri)} is not a valid URL ({first_line(err)}); expected e.g. "
                          "sqlite:///<dir>/mlflow.db or postgresql://user@host:5432/db") from None
    database = url.database
    if scheme == "sqlite" and database and database != ":memory:" and not Path(database).resolve().parent.is_dir():
        raise ConfigError(f"--tracking-uri {uri}: folder {Path(database).parent} does not exist; create it or "
                          "name a SQLite file in an existing folder")
    if scheme in DEFAULT_PORTS:
        try:
            socket.create_connection((url.host or "localhost", port or DEFAULT_PORTS[scheme]), timeout).close()
        except OSError as err:
            raise ServiceError(f"the MLflow tracking database {masked(uri)} does not answer within {timeout:g} s "
                               f"({first_line(err)}); {way_out}") from None


def __getattr__(name: str) -> Any:
    if name in _MLFLOW_RUNS:
        from . import mlflow_runs

        return getattr(mlflow_runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class NullTracker:
    """Stands in for an MLflow run when tracking is off (``--no-track``): the same calls, nothing recorded."""

    run_id = None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False

    def log_params(self, params: Any) -> None:
        pass

    def log_metrics(self, metrics: Any, step: int) -> None:
        pass

    def log_dict_artifact(self, obj: Any, name: str) -> None:
        pass

    def set_tags(self, tags: Any) -> None:
        pass

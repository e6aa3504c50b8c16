"""Where a grid's Optuna studies live: a journal file for one machine, a database for a cluster.

    regbench bench --profile small                                          # <out>/optuna.journal (default)
    regbench bench --profile small --storage postgresql://me@db-host/regbench   # cluster mode

The journal file (the default, ``<out>/optuna.journal``) is the fastest store for workers on one machine: they
share it through file locks and a worker's death is seen through its process id.

Workers on several machines share a database instead (any SQLAlchemy URL Optuna's ``RDBStorage`` takes:
PostgreSQL in production, SQLite for a test). There a process id says nothing about another host, so every running
trial sends Optuna's heartbeat, and a trial whose heartbeat is older than the grace period is failed by the next
worker that looks at its cell (harness.grid.liveness): its slot is redone, whichever host it died on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.urls import mask_url as describe
from .liveness import GRACE_BEATS, heartbeat_seconds

STORAGE_ENV = "REGBENCH_OPTUNA_STORAGE"  # default of --storage, so cluster jobs need not repeat it
# The Python driver each database needs, for the error a missing one gives.
DRIVERS = {"postgresql": "psycopg (pip install 'regbench[cluster]')", "mysql": "PyMySQL or mysqlclient"}


def open_storage(out: Path, url: str | None = None, *, heartbeat: int | None = None) -> Any:
    """The Optuna storage of a grid: ``url`` (else ``$REGBENCH_OPTUNA_STORAGE``, else ``<out>/optuna.journal``).
    A URL with ``://`` is a database, whose trials beat every ``heartbeat`` seconds (default
    :func:`heartbeat_seconds`); anything else is a journal file path."""
    where = resolve(out, url)
    if isinstance(where, Path):
        return _journal(where)
    beat = heartbeat or heartbeat_seconds()
    return _database(where, beat, GRACE_BEATS * beat)


def resolve(out: Path, url: str | None = None) -> str | Path:
    """Where a grid's studies live: a database URL (str) or a journal file (Path)."""
    url = url or os.environ.get(STORAGE_ENV) or None
    if url and "://" in url:
        return url
    return Path(url) if url else Path(out) / "optuna.journal"


def _journal(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if path.is_dir():
        raise ConfigError(f"--storage {path} is a directory; give a journal file path (e.g. {path / 'optuna.journal'}) "
                          "or a database URL (postgresql://user@host/db)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _database(url: str, heartbeat_seconds: int, grace_seconds: int) -> Any:
    import sqlalchemy.exc
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RDBStorage

    scheme = url.split("://", 1)[0].split("+", 1)[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # the heartbeat is "experimental" since Optuna 2.9
            # pool_pre_ping: a worker idles for minutes between trials; the database may close idle connections
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat_seconds,
                              grace_period=grace_seconds)
    except ImportError as err:  # Optuna re-raises the driver's ModuleNotFoundError as an ImportError
        missing = getattr(err.__cause__, "name", None) or getattr(err, "name", None) or "its driver"
        driver = DRIVERS.get(scheme, f"the Python driver of {scheme}")
        raise ConfigError(f"--storage {describe(url)} needs {driver}; it is not installed ({missing})") from None
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(f"--storage {describe(url)}: {scheme!r} is not a database SQLAlchemy knows; use "
                          "postgresql://user:password@host/db, or a journal file path") from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as err:
        raise ConfigError(f"--storage {describe(url)} is not a database URL ({_first_line(err)}); "
                          "expected e.g. postgresql://user:password@host/db") from None
    except sqlalchemy.exc.OperationalError as err:
        raise ConfigError(f"cannot reach the Optuna storage {describe(url)}: {_first_line(err.orig or err)}") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]

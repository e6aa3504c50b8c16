"""User-facing errors: one line that names what is wrong and what would be right.

The CLI prints ``str(error)`` of a :class:`RegbenchError` without a traceback and exits with status 2. Faults that
come up from below as other exceptions (a full disk, a corrupt Parquet file, a locked SQLite database) are
recognised by :func:`describe_fault` and get the same one line, saying how to resume; anything else is a bug, shown
as one line that points at ``--debug`` (which prints the traceback).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from types import TracebackType

# datasets' Parquet reader logs a corrupt file as an error and then raises it; the raised one is reported (one line,
# naming the file), so the logged copy would be a second, raw report of the same thing.
logging.getLogger("datasets.packaged_modules.parquet.parquet").setLevel(logging.CRITICAL)

DEBUG_HINT = "re-run with --debug for the traceback"
RESUME = "everything written so far is kept; re-run the same command to resume"


class RegbenchError(Exception):
    """Bad input or environment, explained in one line for the user.

    One line whatever the input: a value quoted into the message may carry line breaks (a YAML key "\\n" found by
    the property tests), so they are shown escaped."""

    def __str__(self) -> str:
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class ConfigError(RegbenchError):
    """A configuration value (CLI flag, task YAML, profile, method parameter) is invalid."""


class DataError(RegbenchError):
    """The data a task needs is missing or malformed."""


class ServiceError(RegbenchError):
    """A service the run needs (the MLflow tracking store, the Optuna storage) cannot be used."""


class Fault(BaseException):  # not an Exception, on purpose (see below)
    """An environmental fault in the middle of a grid (a full disk), already described in one line. A BaseException
    so that the per-trial catch-all (harness.grid.tune: one broken configuration must not stop the grid) lets it
    through: the grid stops, and the trial is redone on resume instead of being scored as a failed configuration."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` and context manager runs on the way out (records are
    written atomically, so stopping between two of them loses nothing)."""


def first_line(err: BaseException | str) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def describe(err: BaseException) -> str:
    """The one line the user sees for any exception (without the ``regbench: error:`` prefix)."""
    if isinstance(err, RegbenchError | Fault):
        return " ".join(str(err).split("\n"))
    if isinstance(err, KeyboardInterrupt):
        how = "SIGTERM" if isinstance(err, Interrupted) else "Ctrl-C (SIGINT)"
        return f"interrupted by {how}; {RESUME}"
    return describe_fault(err) or f"unexpected {type(err).__name__}: {first_line(err)}; {DEBUG_HINT}"


def describe_fault(err: BaseException) -> str | None:
    """One line for a known environmental fault anywhere in the exception's chain, else None."""
    for cause in _chain(err):
        text = str(cause)
        if (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)) or (
                "database or disk is full" in text or "No space left on device" in text):
            target = (getattr(cause, "filename", None) or _sqlite_in(text) or _innermost_path(err, "path")
                      or "the output directory")
            return f"disk full while writing {target}: free space and re-run the same command to resume " \
                   "(records written so far are complete and kept)"
        if "database is locked" in text:
            return "an SQLite store is locked by another process (two commands writing one mlflow.db?): wait for " \
                   f"the other to finish, or use --workers N in one command; {RESUME}"
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and cause.filename:
            return f"cannot write {cause.filename} ({cause.strerror}): choose an output directory you can write"
        if isinstance(cause, OSError) and cause.errno in (errno.ENOTDIR, errno.EEXIST) and cause.filename:
            return f"{cause.filename} cannot be used as a directory ({cause.strerror}): give another path"
        if _raised_reading_parquet(cause):
            where = _innermost_path(err, suffix=".parquet") or "a Parquet data file"
            return f"data file {where} is corrupt or truncated ({first_line(cause)}): restore it from the mirror " \
                   "or point --data-dir at a good copy"
    return None


def _raised_reading_parquet(err: BaseException) -> bool:
    """Raised by pyarrow, or inside the Parquet reader of ``datasets`` (which re-raises a damaged page as a plain
    ValueError or OSError): where it was raised tells, not its type."""
    if type(err).__module__.startswith("pyarrow"):
        return True
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return isinstance(err, OSError | ValueError) and ("/pyarrow/" in where or "packaged_modules/parquet" in where)


def _chain(err: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _sqlite_in(text: str) -> str | None:
    return "the MLflow SQLite store (mlflow.db)" if "sqlite" in text.lower() else None


def _innermost_path(err: BaseException, name: str | None = None, suffix: str = "") -> str | None:
    """The innermost path among the failing frames' locals (named ``name``, or any ending in ``suffix``): errors
    from below often do not say which file they were at (a write on a full disk; ``datasets`` and ``pyarrow`` on a
    corrupt Parquet file), while the frames that called them hold it."""
    found = None
    for cause in _chain(err):
        tb: TracebackType | None = cause.__traceback__
        while tb is not None:
            for key, value in tb.tb_frame.f_locals.items():
                if isinstance(value, str | Path) and (key == name or (suffix and str(value).endswith(suffix))):
                    found = str(value)
            tb = tb.tb_next
    return found


def check_dir(path: str | Path, flag: str) -> Path:
    """Fail in one line, before anything is written, when ``path`` cannot be (or become) a writable directory.
    Creates nothing: bad input must leave no trace."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is an existing file, not a directory; give a directory path "
                          "(it is created if missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is a file, so it cannot hold a directory; give another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable; give a directory you can write")
    return path

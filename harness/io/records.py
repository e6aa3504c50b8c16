"""Result records: one immutable JSON document per run, the source of truth of every leaderboard.

Sections: ``run_info`` (keys, config, seed, status, error), ``train_info`` (dev curve, best epoch, losses, timings),
``metrics`` (test and dev metrics), ``predictions`` (per-example test predictions, compact) and ``meta_info``
(provenance: git SHA + dirty flag, package versions, model checksum, data file hashes, device). A run is done iff its
record exists and parses, so records are written atomically (temp file + fsync + rename: a crash never leaves a
half-written one) and never overwritten. ``.json.gz`` is written and read transparently. MLflow only mirrors them.
What a record is (fields, types, schema versions) is defined once, by the typed model in ``record_model.py``:
:func:`build_record` and :func:`validate_record` go through it, and :func:`read_record` returns the file as written
(a version-1 file stays version 1 until :func:`validate_record` upgrades it).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ..core.errors import RegbenchError
from ..core.version import __version__, package_version
from .record_model import PREDICTION_KINDS, SCHEMA_VERSION, RunRecord, parse_record

PACKAGES = ("torch", "transformers", "datasets", "evaluate", "optuna", "mlflow", "numpy", "pandas", "scikit-learn",
            "scipy", "seqeval")
_TMP_PREFIX = ".tmp-"
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 hex of a file, cached per (resolved path, size, mtime_ns) so a changed file is hashed again."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with resolved.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


def _git(*args: str) -> subprocess.CompletedProcess[str] | None:
    here = str(Path(__file__).resolve().parent)
    try:  # --no-optional-locks: `git status` must not take index.lock while someone commits in this checkout
        return subprocess.run(["git", "--no-optional-locks", "-C", here, *args],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None


def _git_state() -> dict[str, Any]:
    """SHA + dirty flag of the repository the regbench sources live in; Nones when there is none (never raises).
    Not cached: an edit in the middle of a long grid is what the dirty flag must catch. A source folder the enclosing
    repository ignores (a non-editable install into ``.venv/``) is not that repository's code."""
    unknown: dict[str, Any] = {"sha": None, "dirty": None}
    status = _git("status", "--porcelain=v2", "--branch")
    if status is None or status.returncode != 0:
        return unknown
    ignored = _git("check-ignore", "-q", Path(__file__).name)
    if ignored is None or ignored.returncode == 0:
        return unknown
    lines = status.stdout.splitlines()
    sha = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {"sha": None if sha in (None, "(initial)") else sha, "dirty": any(_changes_code(line) for line in lines)}


def _changes_code(status_line: str) -> bool:
    """A porcelain-v2 line that makes the tree differ from its SHA: any tracked change, any untracked file except
    the outputs regbench writes under results/ (a grid's own records must not mark the grid's later runs dirty)."""
    if not status_line or status_line.startswith("#"):
        return False
    return not (status_line.startswith("? ") and status_line[2:].startswith("results/"))


LOCK_FILE = "requirements-lock.txt"  # at the repository root: what nox, tox and CI install (hashes, exact pins)


def lock_state() -> dict[str, Any]:
    """The lock file beside these sources and its sha256 (None for an installed copy that ships without one)."""
    path = Path(__file__).resolve().parents[2] / LOCK_FILE
    return {"lock_file": LOCK_FILE, "lock_sha256": file_sha256(path) if path.is_file() else None}


def command_line() -> str:
    """The command that is running, as a shell would take it back (``regbench bench --profile quick``)."""
    argv = list(sys.argv) or ["python"]
    if Path(argv[0]).name in ("regbench", "__main__.py"):
        argv[0] = "regbench"
    return shlex.join(argv)


def collect_provenance(*, model_name: str, model_checksum: str | None, data_files: Sequence[str | Path], device: str,
                       extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``meta_info``: everything needed to tell whether two records are comparable (same code, stack, data)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "regbench_version": __version__,
        "git": _git_state(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "determinism": {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled()},
        "model": {"name": model_name, "checksum": model_checksum},
        "data_files": {str(path): file_sha256(path) for path in data_files},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),  # what made it; `regbench reproduce <record>` re-runs it from the record alone
        "environment": lock_state(),
        **dict(extra or {}),
    }


def compact_predictions(ids: Sequence[int], preds: Sequence[Any], kind: str,
                        refs: Sequence[Any] | None = None) -> dict[str, Any]:
    """Per-example test predictions as plain JSON: label ids, values (6 significant digits: float noise only bloats
    records) or tag-id sequences; with ``refs``, the gold references in the same encoding under ``ref`` (suite
    version 2: a bootstrap over test examples needs both). The inverse is reading the dict."""
    if kind not in PREDICTION_KINDS:
        raise ValueError(f"prediction kind must be one of {', '.join(PREDICTION_KINDS)}, got {kind!r}")
    if len(ids) != len(preds) or (refs is not None and len(refs) != len(ids)):
        raise ValueError(f"{len(ids)} ids but {len(preds)} predictions and {len(refs or [])} references")
    out = {"kind": kind, "ids": [int(i) for i in ids], "pred": _encode(preds, kind)}
    if refs:
        out["ref"] = _encode(refs, kind)
    return out


def _encode(values: Sequence[Any], kind: str) -> list[Any]:
    if kind == "label":
        return [int(p) for p in values]
    if kind == "value":
        return [float(f"{float(p):.6g}") for p in values]
    return [[int(t) for t in seq] for seq in values]


def build_record(*, run_info: Mapping[str, Any], train_info: Mapping[str, Any], metrics: Mapping[str, Any],
                 predictions: Mapping[str, Any] | None, meta_info: Mapping[str, Any]) -> dict[str, Any]:
    """The one place a record is assembled: its sections (``metrics`` with ``test``, ``dev``, ``ood`` and
    ``collapse``), stamped with the schema version and validated, so a malformed one fails at the end of its run,
    not at aggregation time. Callers hand over every piece; nothing is patched into a record afterwards."""
    record = {"schema_version": SCHEMA_VERSION, "run_info": dict(run_info), "train_info": dict(train_info),
              "metrics": dict(metrics), "predictions": dict(predictions) if predictions is not None else None,
              "meta_info": dict(meta_info)}
    return validate_record(record).to_dict()


def _unserialisable(obj: Any, where: str) -> str | None:
    """Where ``obj`` stops being plain JSON (str keys only, so a record reads back identical), or None."""
    if obj is None or isinstance(obj, (str, int, float)):
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                return f"{where} has a non-string key {key!r}"
            if found := _unserialisable(value, f"{where}.{key}" if where else key):
                return found
        return None
    if isinstance(obj, (list, tuple)):
        return next((f for i, v in enumerate(obj) if (f := _unserialisable(v, f"{where}[{i}]"))), None)
    return f"{where} is a {type(obj).__name__}, which JSON cannot store"


def validate_record(record: Mapping[str, Any]) -> RunRecord:
    """The record as the typed model (a version-1 record upgraded to the version-2 layout); a one-line
    :class:`RegbenchError` names the first missing or wrong field, or the first value JSON cannot store."""
    model = parse_record(record)
    if problem := _unserialisable(dict(record), ""):
        raise RegbenchError(f"record {problem}")
    return model


def _dumps(record: Mapping[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, fixed indent): the same record always gives the same file, diffs stay small."""
    return (json.dumps(record, sort_keys=True, indent=1, allow_nan=True) + "\n").encode()


def write_record(path: str | Path, record: Mapping[str, Any], overwrite: bool = False) -> Path:
    """Write atomically and durably; refuse to replace an existing record (records are immutable). Keys starting
    with ``_`` are in-process annotations (``_path``) and are not stored. Without ``overwrite`` the final step is a
    hard link, which fails if the path appeared meanwhile (two workers racing on one record)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RegbenchError(f"record {path} already exists; records are immutable (pass overwrite=True to replace)")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _dumps({k: v for k, v in record.items() if not k.startswith("_")})
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: same record → same bytes
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; records are shared results
        try:
            (os.replace if overwrite else os.link)(tmp, path)
        except FileExistsError:
            raise RegbenchError(f"record {path} already exists; records are immutable") from None
        except OSError:  # no hard links on this filesystem: the exists() check above is the best we can do
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX; best effort elsewhere)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """Read a ``.json`` or ``.json.gz`` record; anything unreadable is a one-line :class:`RegbenchError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        data = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    except FileNotFoundError:
        raise RegbenchError(f"record {path} does not exist") from None
    except (OSError, ValueError, EOFError) as err:
        raise RegbenchError(f"record {path} does not parse: {err}") from None
    if isinstance(data, dict):
        return data
    raise RegbenchError(f"record {path} does not parse: expected a JSON object, got {type(data).__name__}")


def iter_records(directory: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every record below a directory in path order; temp files of interrupted writes are skipped. A record that
    does not parse raises rather than being skipped: silently dropping runs would bias aggregates."""
    paths = [p for p in Path(directory).rglob("*")
             if p.name.endswith((".json", ".json.gz")) and not p.name.startswith(_TMP_PREFIX) and p.is_file()]
    for path in sorted(paths):
        yield path, read_record(path)

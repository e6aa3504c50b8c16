"""Result records (and per-cell tuning summaries) → tidy pandas DataFrames, one row per final run / per cell.

Records load through the typed record model (``harness/io/record_model.py``, via :func:`records.validate_record`), which
upgrades version-1 records (top-level ``collapse``) to the version-2 layout, so every field, the collapse measures
under ``metrics.collapse`` included, is read from one place. Bad input never crashes a leaderboard: a record that
does not parse or does not fit the model (which requires what the leaderboard needs, ``run_info.size`` and
``run_info.noise.rate``) is named in one line and skipped, and the skips are counted. Records of other phases
(tuning trials, single ``regbench run`` runs) are ignored, not errors.
When one seed of one cell has several records (``--overwrite always``, or a cell tuned again from scratch that chose
another configuration, so another run key), the newest is kept — by the timestamp that ends every record's file
name, not by path order, which sorts by run key first — and the replaced ones are counted.

Protocol versions never mix: only records of the newest ``run_info.config.suite_version`` present are kept (a
record without one is version 1), the others are counted per version for the provenance lines. A run whose test
score is missing or not finite (a diverged run) is never dropped: it is scored at ``train_info.majority_test`` (the
majority-class predictor's primary score on the clean test set) and counts as a failure; an old record without
``majority_test`` keeps no score, is flagged ``unscored`` and makes its cell incomplete.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from regbench.harness.core.errors import RegbenchError
from regbench.harness.io import records
from regbench.harness.io.cell_summaries import read_cell_summaries
from regbench.harness.io.record_model import RunRecord

from .intervals import aligned

CELL = ["size", "noise", "task", "method"]  # what identifies a cell of the leaderboard
RUN = [*CELL, "seed"]
WRITTEN = "_written"  # a record's file-name timestamp, only to keep the newest of a seed's records


@dataclass
class Loaded:
    """The runs, the cells, and what was skipped on the way (one line per skipped file)."""

    runs: pd.DataFrame
    cells: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    ignored: int = 0  # records of other phases
    replaced: int = 0  # older duplicates of a seed
    older: dict[int, int] = field(default_factory=dict)  # suite version → records ignored (older protocol)
    suite_version: int = 1


@cache
def task_meta(task: str) -> dict[str, Any]:
    """Family and flags of a task. The one place a family is derived: the YAML's ``family`` if set, else the task
    type (token / regression / multiple_choice / classification); a task not registered here is ``other``."""
    from regbench.benchmarks.taskspec import get_task

    try:
        spec = get_task(task)
    except Exception:  # noqa: BLE001 — an unknown task (records from elsewhere) still gets a row
        return {"family": "other", "exclude_from_average": False, "heldout_test": False}
    family = spec.family or {"token_classification": "token"}.get(spec.type, spec.type)
    return {"family": family, "exclude_from_average": bool(spec.extra.get("exclude_from_average", False)),
            "heldout_test": bool(spec.extra.get("test_is_heldout_training_pool", False))}


def noise_label(noise_type: str | None, rate: float) -> str:
    """``clean`` or ``<type> <rate>`` (e.g. ``symmetric 0.2``): the label of a noise level in every table."""
    return "clean" if not rate or noise_type in (None, "none") else f"{noise_type} {rate:g}"


def size_order(label: str) -> tuple[int, int]:
    """k-shot sizes (per class) first, then totals, then full; each by number."""
    if label == "full":
        return (2, 0)
    digits = "".join(c for c in label if c.isdigit())
    return (0 if label.startswith("k") else 1, int(digits or 0))


def noise_order(label: str) -> tuple[float, str]:
    return (0.0, "") if label == "clean" else (float(label.rsplit(" ", 1)[1]), label)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _row(record: RunRecord) -> dict[str, Any]:
    info, metrics, meta, train = record.run_info, record.metrics, record.meta_info, record.train_info
    rate = float(info.noise.rate)
    ntype = info.noise.type if rate else "none"
    collapse = metrics.collapse.metrics if metrics.collapse else {}
    ood = metrics.ood or {}
    git, model = meta.git, meta.model
    row = {
        "task": info.task, "method": info.method, "seed": info.seed, "status": info.status,
        "size": info.size, "noise": noise_label(ntype, rate), "noise_type": ntype, "noise_rate": rate,
        "profile": info.profile, "cell_key": info.cell_key, "run_id": info.run_id,
        "suite_version": _suite_version(info.config),
        **_test_score(record),
        "dev_primary": _number((metrics.dev or {}).get("primary")),
        "wall_seconds": _number(train.wall_seconds),
        "inference_parameters": _number(train.inference_parameters),
        **_settings(record),
        "phases": _phases(record),
        "params": json.dumps(info.params or {}, sort_keys=True),
        "git_sha": git.sha if git else None, "git_dirty": git.dirty if git else None,
        "model": model.name if model else None, "model_checksum": model.checksum if model else None,
        "packages": json.dumps(meta.packages or {}, sort_keys=True),
        "data_files": json.dumps(meta.data_files or {}, sort_keys=True),
        **task_meta(info.task),
    }
    row.update({f"collapse.{k}": float(v) for k, v in sorted(collapse.items()) if not math.isnan(_number(v))})
    row.update({f"ood.{k}": _number(v.get("primary")) for k, v in sorted(ood.items())})
    return row


def _settings(record: RunRecord) -> dict[str, Any]:
    """The training settings a run used (``run_info.config``) and its training-set size, for provenance lines."""
    config = record.run_info.config
    train, data = config.get("train") or {}, config.get("data") or {}
    facts = record.train_info.data or {}
    return {"epochs": _number(train.get("epochs")), "batch_size": _number(train.get("batch_size")),
            "max_length": _number(data.get("max_length")), "max_test_examples": _number(data.get("max_test_examples")),
            "train_examples": _number(facts.get("train_size")), "split_rule": facts.get("split_rule")}


def _suite_version(config: dict[str, Any]) -> int:
    version = _number(config.get("suite_version"))
    return int(version) if math.isfinite(version) else 1  # records from before the field: the first protocol


def _test_score(record: RunRecord) -> dict[str, Any]:
    """The test score, status, chance level, test-set facts and aligned predictions of one record."""
    train, status = record.train_info, record.run_info.status
    primary = _number((record.metrics.test or {}).get("primary"))
    majority = _number(train.majority_test)
    data = train.data or {}
    out = {"primary": primary, "status": status, "majority_test": majority, "at_majority": False,
           "unscored": False, "test_size": _number(data.get("test_size")), "test_capped": data.get("test_capped"),
           "pred_kind": None, "pred": None}
    if not math.isfinite(primary):  # a diverged run: at chance, a failure, never silently gone
        out.update(primary=majority, at_majority=math.isfinite(majority), unscored=not math.isfinite(majority),
                   status="failed" if status == "ok" else status)
    predictions = record.predictions
    if predictions is not None and predictions.ref is not None:
        out.update(pred_kind=predictions.kind, pred=aligned(predictions.ids, predictions.pred, predictions.ref))
    return out


def _stamp(path: Path) -> str:
    """The UTC start time in a record's file name (``<run key>-<YYYYmmddTHHMMSSffffff>Z.json``; "" if renamed)."""
    stem = path.name.split(".", 1)[0]
    return stem.rpartition("-")[2] if "-" in stem else ""


def _record_paths(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.name.endswith((".json", ".json.gz"))
                  and not p.name.startswith(".tmp-") and p.is_file())


def load_runs(records_dir: str | Path) -> Loaded:
    """Every final-run record below ``records_dir`` as one row; raises a clear error when there is none."""
    directory = Path(records_dir)
    if not directory.is_dir():
        raise RegbenchError(f"records directory {directory} does not exist: run `regbench bench` first "
                            "(or pass --records DIR)")
    loaded = Loaded(pd.DataFrame(), pd.DataFrame())
    rows: list[dict[str, Any]] = []
    for path in _record_paths(directory):
        try:
            record = records.validate_record(records.read_record(path))
        except RegbenchError as err:
            message = str(err) if str(path) in str(err) else f"{path}: {err}"
            loaded.skipped.append(f"skipped {message}")
            continue
        info = record.run_info
        if (info.phase if "phase" in info.model_fields_set else "final") != "final":  # no phase: older than the field
            loaded.ignored += 1
            continue
        rows.append({**_row(record), WRITTEN: _stamp(path)})
    if not rows:
        raise RegbenchError(f"no usable final-run records under {directory} ({len(loaded.skipped)} skipped): "
                            "run `regbench bench --profile <name>` first")
    runs = pd.DataFrame(rows)
    loaded.suite_version = int(runs["suite_version"].max())
    loaded.older = {int(v): int(n) for v, n in sorted(runs["suite_version"].value_counts().items())
                    if v != loaded.suite_version}
    runs = runs[runs["suite_version"] == loaded.suite_version]
    runs = runs.sort_values(WRITTEN, kind="stable")  # ties (renamed files) keep path order
    kept = runs.drop_duplicates(subset=RUN, keep="last").drop(columns=WRITTEN)
    loaded.replaced = len(runs) - len(kept)
    loaded.runs = kept.sort_values(RUN, key=_sort_key).reset_index(drop=True)
    return loaded


def _sort_key(column: pd.Series) -> pd.Series:
    if column.name == "size":
        return column.map(size_order)
    if column.name == "noise":
        return column.map(noise_order)
    return column


def load_cells(cells_dir: str | Path | None, skipped: list[str]) -> pd.DataFrame:
    """Per-cell tuning summaries (``cells/<task>/<method>/<cell_key>.json``); unreadable ones are skipped."""
    rows = []
    for path, cell in read_cell_summaries(cells_dir):
        try:
            if isinstance(cell, Exception):
                raise cell
            rows.append({
                "task": cell["task"], "method": cell["method"], "size": cell["size"],
                "noise": noise_label(cell.get("noise_type"), float(cell.get("noise_rate") or 0.0)),
                "budget": cell.get("budget"), "trials": cell.get("trials") or [],
                "best_params": cell.get("best_params") or {}, "best_value": _number(cell.get("best_value")),
                "cpu_seconds": _number(cell.get("cpu_seconds")), "gpu_seconds": _number(cell.get("gpu_seconds")),
                "steps": _number(cell.get("steps")), "wall_seconds": _number(cell.get("wall_seconds")),
            })
        except (OSError, ValueError, KeyError, TypeError) as err:
            skipped.append(f"skipped {path}: not a cell summary ({type(err).__name__}: {err})")
    columns = [*CELL, "budget", "trials", "best_params", "best_value", "cpu_seconds", "gpu_seconds", "steps",
               "wall_seconds"]
    return pd.DataFrame(rows, columns=columns)


def phase_exceptions(runs: pd.DataFrame) -> str:
    """Each method's exceptions to STD's schedule, once per method. A note that carries a tuned value (LP-FT's head
    LR) differs by cell: the first is shown with the number of variants, not every cell's copy."""
    notes: dict[str, list[str]] = {}
    for method, note in sorted(set(zip(runs["method"], runs["phases"], strict=True))):
        if note:
            notes.setdefault(method, []).append(note)
    return "; ".join(f"{m}: {n[0]}" + (f" (one of {len(n)} variants: the tuned values differ by cell)" if len(n) > 1
                                        else "") for m, n in notes.items())


def _phases(record: RunRecord) -> str:
    """What the run did beyond STD's schedule (``train_info.phases``; older records: the method's own account of
    its configuration), so the leaderboard states every exception to the equal protocol."""
    if "phases" in record.train_info.model_fields_set:
        return str(record.train_info.phases or "")
    from regbench.harness.run.method import get_method

    config = record.run_info.config
    try:
        method = get_method(config["method"]["name"], config["method"]["params"])
        return method.phase_note(int(config["train"]["epochs"]))
    except Exception:  # noqa: BLE001 — a method not registered here: its phases are unknown, not an error
        return ""

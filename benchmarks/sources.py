"""Where a task's data lives: the Parquet mirror directory, each split's file, and its row count from the footer.

Split from ``data.py`` (which loads and tokenizes through ``datasets``) so that ``regbench ls tasks`` and other
listings read the mirror without importing ``datasets`` and ``transformers`` (results/perf/startup.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from regbench.harness.core.errors import DataError

from .taskspec import TaskSpec


def default_data_dir() -> Path | None:
    """``$REGBENCH_DATA_DIR``, else the ``shared/data`` mirror beside the checkout, else None."""
    env = os.environ.get("REGBENCH_DATA_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[1]
    for base in (repo_root, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        return default_data_dir()
    path = Path(data_dir)
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist; point --data-dir or REGBENCH_DATA_DIR at the Parquet "
                        "mirror (e.g. ../shared/data)")
    return path


def split_sizes(task: TaskSpec, data_dir: str | Path | None = None) -> dict[str, int | None]:
    """Rows per split from the mirror's Parquet footers (no data read; None where the file is absent), for listings."""
    import pyarrow.parquet as pq

    root, sizes = resolve_data_dir(data_dir), {}
    for split, entry in task.splits.items():
        source_split, mirror, _ = split_source(task, split)
        path = root / mirror / f"{source_split}.parquet" if (root and mirror) else None
        rows = pq.read_metadata(path).num_rows if path is not None and path.is_file() else None
        if rows is not None and isinstance(entry, dict) and "part" in entry and task.resplit:
            n_test = round(float(task.resplit["test_fraction"]) * rows)
            rows = n_test if entry["part"] == "test" else rows - n_test
        sizes[split] = rows
    return sizes


def describe_splits(task: TaskSpec) -> str:
    """How train/dev/test are formed, for the record (re-split tasks say so)."""
    rule = "dev carved from the training pool (disjoint, data seed); test = the task's test split"
    if task.resplit:
        rule += (f"; the source split was re-split once (seed {task.resplit['seed']}, test fraction "
                 f"{task.resplit['test_fraction']}) into a training pool and a disjoint test part")
    return rule


def split_source(task: TaskSpec, split: str) -> tuple[str, str | None, Any]:
    """(split name, mirror dir, hub name) of a split: a plain name uses the task's source; a mapping
    ``{split, mirror, hub}`` overrides it (e.g. QNLI trains on a pool from another mirror dir than its test set)."""
    entry = task.splits[split]
    if isinstance(entry, dict):
        return (str(entry["split"]), entry.get("mirror", task.source.get("mirror")),
                entry.get("hub", task.source.get("hub")))
    return str(entry), task.source.get("mirror"), task.source.get("hub")

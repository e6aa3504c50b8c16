"""``regbench validate``: check a task's YAML and data without training.

Checks: the YAML parses into a TaskSpec (done on load), every split it names exists and is non-empty, the columns
it uses exist, label ids are within range. Test examples whose text also occurs in the training pool are counted
and reported: real datasets hold natural duplicates (CoNLL headlines such as "-- ."), and the run pipeline drops
them from the training pool (``benchmarks.data.exclude_test_overlap``), so nothing is evaluated that was trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from regbench.benchmarks.data import load_split
from regbench.benchmarks.taskspec import TaskSpec

from .core.errors import DataError
from .post.ood import check_ood


def validate_task(task: TaskSpec, data_dir: str | Path | None = None, check_data: bool = True) -> str:
    """Raise a one-line error for the first problem found; return a short summary when all is well."""
    if not check_data:
        return "yaml ok"
    sizes = {}
    hashes = {}
    for split in task.splits:
        loaded = load_split(task, split, data_dir)
        if len(loaded.dataset) == 0:
            raise DataError(f"task file {task.path}: splits.{split} ({loaded.source}) is empty")
        _check_label_range(task, split, loaded.dataset[task.label_column])
        sizes[split] = len(loaded.dataset)
        hashes[split] = {_content_hash(task, row) for row in loaded.dataset}
    overlap = len(hashes["train"] & hashes["test"])
    summary = ", ".join(f"{split} {n}" for split, n in sizes.items())
    summary += f" ({overlap} test texts also in the training pool: excluded from training)" if overlap else ""
    ood = check_ood(task, data_dir)  # every OOD set loads and its labels map into this task's label space
    return f"{summary}; {ood}" if ood else summary


def _check_label_range(task: TaskSpec, split: str, labels: list) -> None:
    if task.type not in ("classification", "token_classification", "multiple_choice"):
        return
    values = {y for seq in labels for y in seq} if task.is_token_task else set(labels)
    bad = sorted(y for y in values if not (isinstance(y, int) and 0 <= y < task.num_labels))
    if bad:
        raise DataError(f"task file {task.path}: label_column {task.label_column!r} of split {split!r} has label "
                        f"{bad[0]!r} outside 0..{task.num_labels - 1} (label_names / num_labels)")


def _content_hash(task: TaskSpec, row: dict) -> str:
    columns = task.input_columns()  # multiple choice: the choices too (one premise may carry two questions)
    text = "\x1f".join(" ".join(row[c]) if isinstance(row[c], list) else str(row[c]) for c in columns)
    return hashlib.sha1(text.encode()).hexdigest()

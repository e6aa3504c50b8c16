"""Cell summaries: ``<out>/cells/<task>/<method>/<cell_key>.json``, one per grid cell (its tuning, its final runs'
scores, its cost), written by the grid when a cell finishes. The path and the one reader live here, so `regbench
status`, the leaderboard and the grid's summary table find the same files and treat a bad one the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CELLS = "cells"


def method_folder(method: str) -> str:
    """The folder of a method's cell summaries and records (harness.api): its name with '+' as 'p'
    (``mvcr+mixout`` → ``mvcrpmixout``), part of every committed grid's layout. Here, not in io.records: this
    module stays free of torch for `regbench status` and the leaderboard."""
    return method.replace("+", "p")


def cell_summary_path(out_dir: Path, task: str, method: str, cell_key: str) -> Path:
    """Where the grid writes a cell's summary."""
    return out_dir / CELLS / task / method_folder(method) / f"{cell_key}.json"


def read_cell_summaries(directory: str | Path | None) -> Iterator[tuple[Path, dict[str, Any] | Exception]]:
    """Every summary under ``directory``, in path order: the parsed JSON object, or the error that kept the file from
    being one (a summary being rewritten, a foreign file). A missing directory holds none."""
    root = Path(directory) if directory else None
    for path in sorted(root.rglob("*.json")) if root and root.is_dir() else []:
        try:
            parsed = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            yield path, err
            continue
        yield path, parsed if isinstance(parsed, dict) else TypeError(f"a JSON {type(parsed).__name__}, not an object")

"""Small grid profiles on the tiny random model, and reading back what a grid wrote (shared by the grid tests)."""

from __future__ import annotations

from pathlib import Path

import yaml

from regbench.harness.io import tracking
from regbench.harness.io.records import iter_records

BASE = {"model": "tiny-random-bert", "tasks": ["sst2"], "sizes": ["n16"], "noise": [0.0], "seeds": [1, 2],
        "methods": ["std"], "trials": 2, "pruner": "none", "epochs": 2, "batch_size": 8, "max_length": 32,
        "max_test_examples": 24}


def write_profile(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def records_of(out: Path) -> list[dict]:
    return [r for _, r in iter_records(out / "records")]


def mlflow_runs(out: Path, experiment: str) -> list:
    return tracking.find_runs(tracking.default_tracking_uri(out), experiment)

"""The grid: plan, tune, run and watch every cell of a profile (task × size × noise × method).

    runner     run_grid / run_cell: tune a cell to its budget, re-run the best configuration over the seeds
    cells      which cells a profile has, their keys (cell, block) and each run's configuration (template)
    profiles   a profile YAML → Profile;  subgrids: named sub-grids of a profile
    tune       one Optuna study per cell: common-random-number start, TPE, budget, tie-break
    liveness   workers, heartbeats and stale trials;  storage: where studies live;  claims: final-run locks
    parallel   several workers and the bench lock;  plan / calibrate: cost before running;  status: progress

The runner's public names are reachable here (``from regbench.harness.grid import run_grid``); they are loaded on
first use, so importing a light module of the package (``grid.storage``, ``grid.profiles``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_RUNNER_NAMES = frozenset({
    "run_grid", "run_cell", "GridContext", "GridOptions", "OVERWRITE_MODES", "pruning_report", "compute_seconds",
    "protocol", "template", "plan_cells", "cell_key", "block_key", "Cell", "output_dir", "experiment_name",
    "with_params", "open_storage", "api",
})


def __getattr__(name: str) -> Any:
    if name not in _RUNNER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.runner"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | _RUNNER_NAMES)

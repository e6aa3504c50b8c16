"""``regbench status``: how far a profile's grid has got — per cell, trials counted and running, final runs done —
read from the studies, the records and the cell summaries alone (it trains nothing and writes nothing), so it works
while workers on any number of machines are running the grid, or after they were stopped. ``spent_min`` is the run
time a cell has cost so far (its summary's trial + final-run seconds: what `regbench plan`'s ``est_minutes``
estimates, so the two can be set side by side).

    regbench status --profile small                                   # results/small, its journal
    regbench status --profile small --out /shared/results/small --storage postgresql://me@db-host/regbench_optuna
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from ..core.errors import RegbenchError
from ..io import records
from ..io.cell_summaries import CELLS, read_cell_summaries
from . import liveness, tune
from .profiles import Profile
from .runner import Cell, output_dir, plan_cells
from .storage import open_storage, resolve


def status_table(profile: Profile, out: str | Path | None = None, storage: str | None = None,
                 data_dir: str | None = None) -> pd.DataFrame:
    """One row per cell: trials counted / budget, trials running now, final runs done / seeds, and its state."""
    out_dir = output_dir(profile, out)
    studies = _studies(out_dir, storage)
    done = _finals_done(out_dir / "records")
    spent = _spent_minutes(out_dir / CELLS)
    rows = [{**_row(profile, cell, studies, done), "spent_min": spent.get(cell.key, "")}
            for cell in plan_cells(profile, data_dir)]
    return pd.DataFrame(rows)


def _spent_minutes(directory: Path) -> dict[str, float]:
    """cell key → run minutes so far (trials + final runs, CPU and GPU), from the cell summaries."""
    spent: dict[str, float] = {}
    for _, cell in read_cell_summaries(directory):
        if isinstance(cell, Exception):
            continue  # a summary being rewritten, or a foreign file: that cell shows no figure
        try:
            spent[cell["cell_key"]] = round(((cell.get("cpu_seconds") or 0) + (cell.get("gpu_seconds") or 0)) / 60, 1)
        except (KeyError, TypeError):
            continue  # not a cell summary
    return spent


def _studies(out_dir: Path, url: str | None) -> Any:
    """The grid's storage, or None when it has none yet (a journal is not created just to be read)."""
    where = resolve(out_dir, url)
    if isinstance(where, Path) and not where.exists():
        return None
    return open_storage(out_dir, url)


def _finals_done(directory: Path) -> Counter:
    """(cell key, seed) → number of readable final-run records."""
    done: Counter = Counter()
    if not directory.is_dir():
        return done
    for path in sorted(directory.rglob("*.json*")):
        try:
            info = records.read_record(path)["run_info"]
        except (RegbenchError, KeyError):
            continue  # torn or foreign files count as not done, as the grid treats them
        if info.get("phase") == "final":
            done[(info.get("cell_key"), info.get("seed"))] += 1
    return done


def _row(profile: Profile, cell: Cell, studies: Any, done: Counter) -> dict[str, Any]:
    row = {"task": cell.task, "size": cell.size, "noise": cell.noise, "method": cell.method}
    if cell.na:
        return {**row, "trials": "", "running": "", "finals": "", "state": f"n/a: {cell.na}"}
    trials = _trials(studies, cell.key)
    counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    running = sum(t.state == TrialState.RUNNING and liveness.is_live(t) for t in trials)
    finals = sum(done[(cell.key, seed)] > 0 for seed in profile.seeds)
    if finals == len(profile.seeds):
        state = "done"
    elif counted + running == 0:
        state = "not started"
    else:
        state = "tuning" if counted < profile.trials else "final runs"
    return {**row, "trials": f"{counted}/{profile.trials}", "running": running,
            "finals": f"{finals}/{len(profile.seeds)}", "state": state}


def _trials(studies: Any, cell_key: str) -> list[optuna.trial.FrozenTrial]:
    if studies is None:
        return []
    try:
        return optuna.load_study(study_name=tune.study_name(cell_key), storage=studies).get_trials(deepcopy=False)
    except KeyError:  # no study for this cell yet
        return []


def render(profile: Profile, table: pd.DataFrame) -> str:
    states = Counter(s if not s.startswith("n/a") else "n/a" for s in table["state"])
    live = table[~table["state"].str.startswith("n/a")]
    runs_done = sum(int(f.split("/")[0]) for f in live["finals"])
    head = (f"profile {profile.name}: {len(table)} cells — " + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
            + f"; final runs {runs_done}/{len(live) * len(profile.seeds)}; trials running now "
            + f"{int(pd.to_numeric(live['running']).sum()) if len(live) else 0}"
            + f"; run time spent {pd.to_numeric(live['spent_min']).sum() / 60:.2f} h")
    return head + "\n" + table.to_string(index=False)

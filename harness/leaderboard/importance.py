"""Best hyperparameters per cell and Optuna's parameter importances, from the per-cell tuning summaries.

The cell files store each trial's parameter values, not the search space, so an in-memory study is rebuilt with
distributions inferred from the values (floats: log scale when all are positive and they span more than a factor of
10; ints; anything else categorical). Importances use Optuna's fANOVA evaluator with a fixed seed (deterministic);
they need ``MIN_TRIALS`` (10) finished trials and a parameter that varies, else the cell shows none and the table
says so: a random forest fitted to 2–9 points gives importances that mostly reflect which trial happened to win.
Trials that failed (value null) are left out; diverged trials count with the failure score the tuner gave them.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .loading import noise_order, size_order

IMPORTANCE_SEED = 0
MIN_TRIALS = 10


def _distribution(values: list[Any]) -> BaseDistribution:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return IntDistribution(min(values), max(values))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        low, high = float(min(values)), float(max(values))
        return FloatDistribution(low, high, log=low > 0 and high / low > 10)
    return CategoricalDistribution(sorted({str(v) for v in values}))


def _finished(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trials if t.get("state") == "COMPLETE" and isinstance(t.get("value"), (int, float))
            and math.isfinite(t["value"]) and t.get("params")]


def importances(trials: list[dict[str, Any]]) -> dict[str, float]:
    """fANOVA importance of each parameter that varies across the finished trials (sums to 1); {} below
    ``MIN_TRIALS`` finished trials."""
    done = _finished(trials)
    names = sorted({k for t in done for k in t["params"]})
    varying = [n for n in names if len({str(t["params"].get(n)) for t in done}) > 1
               and all(n in t["params"] for t in done)]
    if len(done) < MIN_TRIALS or not varying or len({float(t["value"]) for t in done}) < 2:
        return {}  # fANOVA needs the score to vary (two trials with equal dev scores happen in few-shot cells)
    dists = {n: _distribution([t["params"][n] for t in done]) for n in varying}
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory" for every cell
    study = optuna.create_study(direction="maximize")
    for t in done:
        params = {n: (str(t["params"][n]) if isinstance(dists[n], CategoricalDistribution) else t["params"][n])
                  for n in varying}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(t["value"])))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    found = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=True)
    return {name: float(found[name]) for name in sorted(found)}


def best_params_table(tuning: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: best dev value, best parameters, trials finished, importances."""
    rows = []
    for _, cell in tuning.iterrows():
        rows.append({"size": cell["size"], "noise": cell["noise"], "task": cell["task"], "method": cell["method"],
                     "trials": len(cell["trials"]), "finished": len(_finished(cell["trials"])),
                     "best_dev": cell["best_value"], "best_params": dict(sorted(cell["best_params"].items())),
                     "importance": importances(cell["trials"])})
    table = pd.DataFrame(rows, columns=["size", "noise", "task", "method", "trials", "finished", "best_dev",
                                        "best_params", "importance"])
    return table.sort_values(["size", "noise", "task", "method"], key=_order, ignore_index=True)


def _order(column: pd.Series) -> pd.Series:
    return column.map(size_order if column.name == "size" else noise_order if column.name == "noise" else str)


def sensitivity_points(tuning: pd.DataFrame) -> pd.DataFrame:
    """Long table (method, param, value, dev, cell) of every finished trial's numeric parameters, for the plot."""
    rows = []
    for _, cell in tuning.iterrows():
        label = f"{cell['task']} {cell['size']} {cell['noise']}"
        for trial in _finished(cell["trials"]):
            for name, value in sorted(trial["params"].items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({"method": cell["method"], "param": name, "value": float(value),
                                 "dev": float(trial["value"]), "cell": label})
    return pd.DataFrame(rows, columns=["method", "param", "value", "dev", "cell"])

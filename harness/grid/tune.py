"""Optuna tuning of one grid cell (task × size × noise × method) under a fixed trial budget.

One study per cell, named by the cell key, so a re-run or a second worker loads the same study
(``load_if_exists``). The budget counts COMPLETE + PRUNED trials plus RUNNING trials of live workers: a re-run after
an interruption tops up exactly, and parallel workers overshoot by at most workers − 1 (each may ask for a trial
after reading the same count). A trial whose worker died (its process is gone; on another host, its heartbeat went
silent: harness.grid.liveness) is marked FAIL and no longer counts, so its slot is redone. A worker whose budget is used
up waits for the other workers' running trials, so all of them re-run the same best configuration. Every trial
ends COMPLETE or PRUNED: a diverged trial, or one that raises, completes with ``FAILURE_SCORE`` (below every
primary metric, all of which are ≥ −1) so it counts and a cell can never loop.

Sampling (suite version 2): the first ``startup_trials`` trials of a cell are drawn with *common random numbers*
(``CommonRandomSampler``): trial *i*'s value of a hyperparameter comes from the block (task × size × noise) key, the
parameter's name and *i* alone, so trial *i* of every method in a block gets the same learning rate (the same
quantile where a method narrows the range, e.g. STD++). Paired comparisons then compare methods, not lr draws. The
draws are a randomly shifted van der Corput sequence: any 2^m consecutive trials from the first cover [0, 1) with one
point per 1/2^m stratum, better than independent draws at small budgets. After the start, TPE (seeded from the cell
key and a worker tag, harness.grid) proposes the rest. Ties on the best dev score are broken by the higher mean dev
score over the trial's evaluations (a configuration that was good throughout, not at one lucky look), then by the
lower trial number — since trial numbers carry the same draws in every method, that last rule favours no method.
Pruning (off by default; ``median``, ``halving``) acts on the best dev metric so far after each evaluation.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from .liveness import WORKER_ATTR, Heartbeat, close_stale_trials, first_beat, is_live, running_elsewhere, worker_id

# The public surface (liveness's names used above are liveness's: import them from there).
__all__ = ["DEV_MEAN_ATTR", "FAILURE_SCORE", "PRUNERS", "TIE_BREAK", "CommonRandomSampler", "TrialOutcome",
           "common_uniform", "counted", "make_pruner", "open_study", "quantile", "study_name", "summary", "tune"]

FAILURE_SCORE = -1.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class TrialOutcome:
    """What an objective reports back: the best dev score, whether it stopped early, and its cost."""

    value: float | None  # None → diverged / no finite dev score (recorded as FAILURE_SCORE)
    pruned: bool
    steps: int
    seconds: float
    error: str | None = None
    dev_mean: float | None = None  # mean dev score over the trial's evaluations: the first tie-break


def study_name(cell_key: str) -> str:
    return f"cell-{cell_key}"


TIE_BREAK = "best dev score, then higher mean dev score over the evaluations, then lower trial number"
DEV_MEAN_ATTR = "dev_mean"


def open_study(storage: Any, cell_key: str, worker: str, pruner: dict[str, Any], block_key: str = "",
               startup_trials: int = 10) -> optuna.Study:
    seed = _seed(f"{cell_key}/{worker}")
    sampler = CommonRandomSampler(block_key or cell_key, startup_trials, seed)
    return optuna.create_study(study_name=study_name(cell_key), storage=storage, direction="maximize",
                               load_if_exists=True, sampler=sampler, pruner=make_pruner(pruner))


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def common_uniform(block_key: str, param: str, number: int) -> float:
    """Trial ``number``'s draw in [0, 1) for ``param``: van der Corput (base 2) shifted by a hash of the block and
    the parameter's name (Cranley–Patterson rotation). Same block, name and number → same draw, in any method."""
    radical, denominator, n = 0.0, 1.0, number
    while n:
        denominator *= 2
        radical += (n % 2) / denominator
        n //= 2
    return (radical + _seed(f"{block_key}/{param}") / 2**32) % 1.0


def quantile(distribution: BaseDistribution, u: float) -> Any:
    """The value at quantile ``u`` of a uniform / log-uniform / categorical distribution (Optuna's ranges)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[min(int(u * len(distribution.choices)), len(distribution.choices) - 1)]
    if not isinstance(distribution, FloatDistribution | IntDistribution):
        raise TypeError(f"no quantile for a {type(distribution).__name__} (uniform, log-uniform or categorical only)")
    low, high = distribution.low, distribution.high
    integer = isinstance(distribution, IntDistribution)
    if distribution.log:  # an integer's top value gets its share: the range is [low, high + 1) before flooring
        value = math.exp(math.log(low) + u * (math.log(high + (1 if integer else 0)) - math.log(low)))
    else:
        value = low + u * (high - low + (1 if integer else 0))
    step = getattr(distribution, "step", None)
    if integer:
        value = low + (math.floor(value - low) // (step or 1)) * (step or 1)
    elif step:
        value = low + round((value - low) / step) * step
    return min(max(int(value) if integer else float(value), low), high)


class CommonRandomSampler(optuna.samplers.BaseSampler):
    """Common random numbers for the first ``startup_trials`` trials (``common_uniform``), TPE afterwards. TPE keeps
    at least its usual 10-trial random start (its own seeded draws), so ``startup_trials: 0`` is plain TPE."""

    def __init__(self, block_key: str, startup_trials: int, seed: int) -> None:
        self.block_key, self.startup_trials = block_key, startup_trials
        self._tpe = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(startup_trials, 10))

    def _common(self, trial: FrozenTrial) -> bool:
        return trial.number < self.startup_trials

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {} if self._common(trial) else self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._common(trial):
            return quantile(param_distribution, common_uniform(self.block_key, param_name, trial.number))
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


PRUNERS = ("median", "halving", "none")


# Each pruner's settings: name -> (default, smallest allowed). Profiles are validated against this table and
# make_pruner reads its defaults from it, so a setting exists in one place.
PRUNER_SETTINGS: dict[str, dict[str, tuple[int, int]]] = {
    "median": {"n_startup_trials": (2, 0), "n_warmup_steps": (1, 0)},
    "halving": {"min_resource": (1, 1), "reduction_factor": (3, 2)},
    "none": {},
}


def make_pruner(spec: dict[str, Any]) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose dev score is below the median of earlier trials at the same epoch (after
    ``n_startup_trials`` trials and ``n_warmup_steps`` epochs). ``halving``: asynchronous successive halving (rungs
    at epochs min_resource·η^i keep the top 1/η, η = ``reduction_factor``) — prunes harder, for large budgets.
    ``none``: off."""
    kind = spec.get("type", "median")
    settings = {name: int(spec.get(name, default)) for name, (default, _) in PRUNER_SETTINGS[kind].items()}
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(**settings)
    return optuna.pruners.MedianPruner(**settings)


def counted(study: optuna.Study) -> int:
    """Trials that use up budget: COMPLETE + PRUNED, and RUNNING ones of live workers."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    return sum(t.state != TrialState.RUNNING or is_live(t) for t in trials)


def tune(study: optuna.Study, budget: int, space: dict[str, BaseDistribution],
         objective: Callable[[optuna.Trial], TrialOutcome], *, storage: Any,
         on_trial: Callable[[], None] | None = None, on_stale: Callable[[int], object] | None = None,
         poll_seconds: float = 2.0) -> int:
    """Run trials until the budget is used up, then wait for other workers' running trials; returns how many this
    call ran. Before each trial, trials of dead workers are closed (``on_stale`` gets their numbers), so a slot lost
    meanwhile, on this host or another, is redone now.

    Why wait: the best configuration is only known once every counted trial has ended, and every worker must re-run
    the same one over the seeds. A worker that went on with the best of the trials finished so far could pick another
    configuration than the worker still training the last trial, and the cell would get two final runs per seed.
    ``storage``: the one ``study`` lives in (harness.grid.storage), for the heartbeat; a required keyword, so forgetting
    it cannot switch a database grid's heartbeats off."""
    ran = 0
    while True:
        close_stale_trials(study, on_stale)
        if counted(study) < budget:
            _run_trial(storage, study, space, objective)
            ran += 1
            if on_trial:
                on_trial()
            continue
        if not running_elsewhere(study):
            return ran
        time.sleep(poll_seconds)


def _run_trial(storage: Any, study: optuna.Study, space: dict[str, BaseDistribution],
               objective: Callable[[optuna.Trial], TrialOutcome]) -> None:
    with warnings.catch_warnings():  # "heartbeat … with Study.optimize": we run its heartbeat ourselves
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        trial = study.ask(fixed_distributions=space)
    try:
        first_beat(storage, study, trial)
        trial.set_user_attr(WORKER_ATTR, worker_id())
    except optuna.exceptions.UpdateFinishedTrialError:  # failed meanwhile as unnamed past the grace: not ours now
        return
    start = time.perf_counter()
    try:
        with Heartbeat(storage, study, trial):
            outcome = objective(trial)
    except Exception as err:  # noqa: BLE001 — one broken configuration must not stop the grid
        outcome = TrialOutcome(None, False, 0, time.perf_counter() - start, f"{type(err).__name__}: {err}")
    _finish(study, trial, outcome)


def _finish(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    try:
        trial.set_user_attr("steps", outcome.steps)
        trial.set_user_attr("seconds", outcome.seconds)
        if outcome.error:
            trial.set_user_attr("error", outcome.error[:500])
        if outcome.dev_mean is not None:
            trial.set_user_attr(DEV_MEAN_ATTR, outcome.dev_mean)
        # skip_if_finished: failed after the last attribute above, Optuna's tell would raise ValueError instead
        if outcome.pruned:
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            value = outcome.value if outcome.value is not None else FAILURE_SCORE
            study.tell(trial, value if value == value else FAILURE_SCORE, skip_if_finished=True)  # NaN → failure
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker failed it meanwhile: its heartbeat went silent for the grace period (this process was
        # suspended or stalled). Its slot counts as lost and is redone; the result is dropped, not the grid.
        pass


def _rank(trial: dict[str, Any]) -> tuple[float, float, int]:
    """Sort key of ``TIE_BREAK`` (larger is better)."""
    mean = trial.get(DEV_MEAN_ATTR)
    return trial["value"], mean if mean is not None and math.isfinite(mean) else -math.inf, -trial["number"]


def summary(study: optuna.Study) -> dict[str, Any]:
    """Trials (params, state, value, cost) and the best configuration, for the cell file and the leaderboard."""
    trials = [{"number": t.number, "state": t.state.name, "params": dict(t.params), "value": t.value,
               "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
               "steps": t.user_attrs.get("steps", 0), "seconds": t.user_attrs.get("seconds", 0.0),
               "error": t.user_attrs.get("error"), DEV_MEAN_ATTR: t.user_attrs.get(DEV_MEAN_ATTR)}
              for t in study.get_trials(deepcopy=False)]
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(done, key=_rank, default=None)
    return {"trials": trials, "best_params": best["params"] if best else None,
            "best_value": best["value"] if best else None, "best_trial": best["number"] if best else None,
            "n_complete": sum(t["state"] == "COMPLETE" for t in trials),
            "n_pruned": sum(t["state"] == "PRUNED" for t in trials),
            "n_failed": sum(t["state"] == "FAIL" for t in trials),
            "steps": sum(t["steps"] for t in trials), "trial_seconds": sum(t["seconds"] for t in trials)}

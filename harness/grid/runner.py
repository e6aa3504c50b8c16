"""The grid: every cell of a profile (task × size × noise × method) is tuned, then re-run over the profile's seeds.

    regbench plan  --profile quick      # cells, run counts, estimated cost; n/a cells with the reason
    regbench bench --profile quick      # run it (resumable); results under results/quick/

Layout under ``results/<profile>/``: ``records/`` (one immutable record per final run — the truth), ``cells/`` (one
summary per cell: trials, best parameters, tuning cost; rewritten as the cell progresses), ``optuna.journal`` (the
studies), ``mlflow.db`` + ``mlartifacts/`` (MLflow mirror: experiment ``regbench-<profile>``, a parent run per
cell, a child run per trial and per final seed, linked by ``mlflow.parentRunId``).

Protocol (suite version 2): trials tune on the profile's ``tune_seed`` (0 by default), a seed outside the reported
``seeds`` — its split is never reported, so no final record carries the winner's curse of the trial that was chosen
on it; every final run trains afresh. Within a block (task × size × noise) trial *i* of every method draws the same
values of the shared hyperparameters during the sampler's random start (harness.grid.tune: common random numbers), so
paired comparisons are not comparisons of learning-rate luck.

Resume: a final run is done iff its record exists and parses; a cell's tuning tops up to the budget (harness.grid.tune);
MLflow runs carry a key (cell key, ``<cell key>/trial<n>``, run key) and an unfinished run with the same key is
reattached, or closed when its trial is abandoned — never duplicated. Several workers share the studies (a journal
file on one machine, a database across machines: harness.grid.storage); final runs are claimed with lock files
(harness.grid.claims) so no two workers run the same seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from tqdm.auto import tqdm

from .. import api
from ..core.errors import ConfigError, Fault, RegbenchError, describe_fault
from ..io import cell_summaries, records, tracking
from ..run.devices import resolve_device
from ..run.method import METHODS
from . import claims, liveness, tune
from .cells import (  # noqa: F401 — re-exported: grid.cell_key, grid.block_key, … stay where users look
    Cell,
    block_key,
    cell_key,
    experiment_name,
    output_dir,
    plan_cells,
    template,
    with_params,
)
from .profiles import Profile
from .storage import open_storage

OVERWRITE_MODES = ("never", "only-missing", "always")


# ---- running ------------------------------------------------------------------------------------------------------
@dataclass
class GridContext:
    profile: Profile
    out_dir: Path
    tracking_uri: str | None
    storage: Any
    overwrite: str = "only-missing"
    data_dir: str | None = None
    track: bool = True
    worker: str = ""  # seeds each cell's TPE sampler beside the cell key (_sampler_tag)
    done_after: float = 0.0  # records older than this (a time.time()) are not done: the start of an `always` grid

    @property
    def tracker_uri(self) -> str:  # run_grid sets tracking_uri whenever the grid tracks
        if self.tracking_uri is None:
            raise RuntimeError("this grid does not track (--no-track): no MLflow runs to reach")
        return self.tracking_uri


@dataclass(frozen=True)
class GridOptions:
    """How one process runs a grid (``regbench bench``'s options, and what its parent tells a worker). Frozen and
    plain, so a spawned worker receives it whole."""

    overwrite: str = "only-missing"
    tracking_uri: str | None = None
    data_dir: str | None = None
    track: bool = True
    storage: str | None = None  # where the Optuna studies live (harness.grid.storage; default <out>/optuna.journal)
    progress: bool = True
    worker_index: int = 0
    # when the grid began (a time.time(); default now): the workers of one grid share it, so under `--overwrite
    # always` a seed one of them re-ran is done for the others, and records older than it are re-run
    started: float | None = None


def run_grid(profile: Profile, out_dir: str | Path | None = None, options: GridOptions | None = None,
             **settings: Any) -> dict[str, Any]:
    """Run (or resume) every applicable cell of the profile in this process, with ``options`` (or GridOptions
    built from ``settings``: ``run_grid(profile, out, track=False)``)."""
    options = options or GridOptions(**settings)
    if options.overwrite not in OVERWRITE_MODES:
        raise ConfigError(f"--overwrite must be one of {', '.join(OVERWRITE_MODES)}, got {options.overwrite!r}")
    out = output_dir(profile, out_dir)
    cells = [c for c in plan_cells(profile, options.data_dir) if c.na is None]
    if options.overwrite == "never" and any(_existing_records(out, c) for c in cells):
        raise RegbenchError(f"{out} already holds records of this profile and --overwrite never was given; "
                            "use --overwrite only-missing to resume or another --out")
    out.mkdir(parents=True, exist_ok=True)
    uri = options.tracking_uri or (tracking.default_tracking_uri(out) if options.track else None)
    began = time.time() if options.started is None else options.started
    studies = open_storage(out, options.storage)
    ctx = GridContext(profile, out, uri, studies, options.overwrite, options.data_dir, options.track,
                      _sampler_tag(studies, options.worker_index), began if options.overwrite == "always" else 0.0)
    total = len(cells) * (profile.trials + len(profile.seeds))
    bar = tqdm(total=total, desc=f"{profile.name} runs", unit="run", position=options.worker_index,
               disable=not options.progress)
    summaries, start = [], time.perf_counter()
    try:
        for done, cell in enumerate(cells):
            bar.set_postfix_str(f"cell {done + 1}/{len(cells)} {cell.name}")
            summaries.append(run_cell(ctx, cell, bar))
    finally:
        bar.close()  # also on a fault: its line ends, so the error line starts a line of its own
    return {"profile": profile.name, "out_dir": str(out), "cells": summaries, "seconds": time.perf_counter() - start}


def _sampler_tag(studies: Any, worker_index: int) -> str:
    """What seeds each worker's TPE sampler beside the cell key. The worker's index on one machine: the same command
    proposes the same configurations again (a grid re-run from scratch reproduces its trials) while the workers of
    one grid propose different ones. With a database, workers on several machines share an index, so their process
    ids tell them apart instead (cluster grids trade that reproducibility for not repeating each other)."""
    from optuna.storages import RDBStorage

    return liveness.worker_id() if isinstance(studies, RDBStorage) else f"worker{worker_index}"


def run_cell(ctx: GridContext, cell: Cell, bar: Any) -> dict[str, Any]:
    """Tune the cell to its budget, then run (or find) the final run of every seed; write the cell summary."""
    profile = ctx.profile
    base = template(profile, cell.task, cell.size, cell.noise, cell.method, ctx.out_dir, ctx.tracking_uri,
                    ctx.data_dir, ctx.track)
    space = profile.space(METHODS.get(cell.method))
    study = tune.open_study(ctx.storage, cell.key, ctx.worker, profile.pruner, cell.block, profile.startup_trials)
    on_stale = (lambda n: tracking.close_runs_with_key(ctx.tracker_uri, experiment_name(profile),
                                                       f"{cell.key}/trial{n}")) if ctx.track else None
    liveness.close_stale_trials(study, on_stale)  # before counting what is done, for the progress bar
    start, started_at = time.perf_counter(), time.time()
    bar.update(min(tune.counted(study), profile.trials))  # trials done before a resume
    with _cell_tracker(ctx, cell) as parent:
        ran = tune.tune(study, profile.trials, space, _objective(ctx, base, cell, parent.run_id),
                        storage=ctx.storage, on_trial=bar.update, on_stale=on_stale)
        tuning = tune.summary(study)
        best = tuning["best_params"] or {"lr": base.train.lr}
        finals = [_final_or_error(ctx, base, cell, best, seed, parent.run_id, bar) for seed in profile.seeds]
        summary = _cell_summary(cell, profile, tuning, finals, time.perf_counter() - start, ran, base.train.device)
        path = cell_summaries.cell_summary_path(ctx.out_dir, cell.task, cell.method, cell.key)
        if ran or _written_since(finals, started_at) or not path.exists():
            _log_cell(parent, summary)
            _write_json(path, summary)
    return summary


def _written_since(finals: list[dict[str, Any]], since: float) -> bool:
    """Whether a final run of the cell wrote its record during this grid. A cell that a resumed grid finds complete
    keeps the summary of the grid that ran it: rewriting it would replace its wall time and trials_run_now with
    those of the resume (about a second and 0)."""
    paths = [Path(f["record"]) for f in finals if f.get("record")]
    return any(path.exists() and path.stat().st_mtime >= since for path in paths)


def pruning_report(trial: Any) -> Callable[[int, dict[str, float]], bool]:
    """The per-epoch callback of a trial: reports the best dev score so far and asks the pruner.

    The best so far is the value the trial would end with if stopped now (its objective is the best epoch's score):
    few-shot dev curves zigzag, and judging the current epoch prunes trials for a dip they would recover from."""
    best = -math.inf

    def report(epoch: int, metrics: dict[str, float]) -> bool:
        nonlocal best
        value = metrics.get("dev_primary")
        if value is None or not math.isfinite(value):
            return False
        best = max(best, value)
        trial.report(best, epoch)
        return trial.should_prune()
    return report


def _objective(ctx: GridContext, base: api.RunConfig, cell: Cell, parent_id: str | None):
    def objective(trial: Any) -> tune.TrialOutcome:
        config = dataclasses.replace(with_params(base, trial.params), evaluate_test=False, write_record=False)
        tags = {"phase": "trial", "trial": str(trial.number), "run_name": f"{cell.name}/trial{trial.number}"}
        try:
            hooks = api.RunHooks(cell_key=cell.key, phase="trial", on_epoch_end=pruning_report(trial),
                                 parent_run_id=parent_id, tracker_key=f"{cell.key}/trial{trial.number}", tags=tags)
            record = api.run(config, hooks)
        except Exception as err:
            _stop_on_fault(trial, err)
            raise
        info = record["train_info"]
        dev = (record["metrics"].get("dev") or {}).get("primary")
        value = None if record["run_info"]["status"] == "diverged" or dev is None else float(dev)
        curve = [p["dev_primary"] for p in info["dev_curve"] if math.isfinite(p["dev_primary"])]
        return tune.TrialOutcome(value, info.get("stopped_at_epoch") is not None, int(info["steps"]),
                                 float(info["wall_seconds"]), record["run_info"].get("error"),
                                 sum(curve) / len(curve) if curve else None)
    return objective


def _stop_on_fault(trial: Any, err: Exception) -> None:
    """A full disk is no property of the configuration: stop the grid (errors.Fault passes the per-trial catch-all)
    with the trial failed, so that a resume redoes it instead of counting a failure score against the method."""
    message = describe_fault(err)
    if message is None:
        return
    with contextlib.suppress(Exception):  # the journal may be on the full disk too: a dead worker's trial is redone
        trial.study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
    raise Fault(message) from err


def _final_or_error(ctx: GridContext, base: api.RunConfig, cell: Cell, best: dict[str, Any], seed: int,
                    parent_id: str | None, bar: Any) -> dict[str, Any]:
    """A final run; a configuration this model cannot take (e.g. re-init of more layers than it has, when every
    trial failed the same way) is reported in the cell summary and the grid goes on: no record, so the leaderboard
    shows the cell as incomplete."""
    try:
        return _final_run(ctx, base, cell, best, seed, parent_id, bar)
    except RegbenchError as err:
        tqdm.write(f"{cell.name} seed {seed}: {err}")
        bar.update(1)
        return {"seed": seed, "run_id": None, "status": "error", "error": str(err), "record": None}


def _final_run(ctx: GridContext, base: api.RunConfig, cell: Cell, best: dict[str, Any], seed: int,
               parent_id: str | None, bar: Any) -> dict[str, Any]:
    config = with_params(base, best, seed=seed)
    key = api.run_key(config)
    while True:
        found = _record_for(ctx.out_dir, cell, key, ctx.done_after)
        if found is not None:
            return _found_final(ctx, found, key, bar)
        with claims.Claim(ctx.out_dir / "claims" / key) as claimed:
            if claimed:
                # Checked again under the claim: another worker may have written this record and released its
                # claim between the check above and our claim; running now would duplicate its seed.
                found = _record_for(ctx.out_dir, cell, key, ctx.done_after)
                if found is not None:
                    return _found_final(ctx, found, key, bar)
                tags = {"phase": "final", "run_name": f"{cell.name}/seed{seed}", "size": cell.size,
                        "noise": f"{cell.noise:g}"}
                hooks = api.RunHooks(cell_key=cell.key, phase="final", parent_run_id=parent_id, tracker_key=key,
                                     tags=tags)
                record = api.run(config, hooks)
                bar.update(1)
                return _final_summary(record, record.get("_path"))
        time.sleep(1.0)  # another worker is running this seed: wait for its record (or take over if it dies)


def _found_final(ctx: GridContext, found: tuple[Path, dict[str, Any]], key: str, bar: Any) -> dict[str, Any]:
    """A final run that is already done (by an earlier grid, or by another worker of this one)."""
    if ctx.track:  # killed between writing the record and ending its MLflow run: end that run now
        tracking.close_runs_with_key(ctx.tracker_uri, experiment_name(ctx.profile), key, "FINISHED")
    bar.update(1)
    return _final_summary(found[1], str(found[0]))


def _final_summary(record: dict[str, Any], path: str | None) -> dict[str, Any]:
    """One final run in the cell summary, with what it cost."""
    info, train_info = record["run_info"], record["train_info"]
    return {"seed": info["seed"], "run_id": info["run_id"], "status": info["status"], "record": path,
            "test_primary": (record["metrics"].get("test") or {}).get("primary"),
            "dev_primary": (record["metrics"].get("dev") or {}).get("primary"),
            "steps": train_info.get("steps"), "seconds": train_info.get("wall_seconds")}


def _record_for(out: Path, cell: Cell, key: str, done_after: float = 0.0) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable record of this run key written after ``done_after`` (a file's mtime; 0 accepts any), so a
    torn or corrupt file, or under ``--overwrite always`` a record older than this grid, does not count as done."""
    folder = out / "records" / cell.task / cell_summaries.method_folder(cell.method)
    for path in sorted(folder.glob(f"{key}-*.json*"), reverse=True):
        try:
            if path.stat().st_mtime < done_after:
                continue
            return path, records.read_record(path)
        except (RegbenchError, FileNotFoundError):
            continue
    return None


def _existing_records(out: Path, cell: Cell) -> bool:
    return any((out / "records" / cell.task / cell_summaries.method_folder(cell.method)).glob("*.json*"))


def _cell_tracker(ctx: GridContext, cell: Cell) -> Any:
    if not ctx.track:
        return tracking.NullTracker()
    tags = {"task": cell.task, "size": cell.size, "noise": f"{cell.noise:g}", "method": cell.method,
            "cell_key": cell.key, "phase": "cell", "profile": ctx.profile.name}
    return tracking.RunTracker(ctx.tracker_uri, experiment_name(ctx.profile), cell.name, tags=tags, key=cell.key)


def _cell_summary(cell: Cell, profile: Profile, tuning: dict[str, Any], finals: list[dict[str, Any]],
                  seconds: float, ran: int, device: str = "cpu") -> dict[str, Any]:
    return {"cell_key": cell.key, "block_key": cell.block, "profile": profile.name, "task": cell.task,
            "size": cell.size, "noise_rate": cell.noise, "noise_type": profile.run.noise_type if cell.noise else "none",
            "method": cell.method, "budget": profile.trials, "trials_run_now": ran, "protocol": protocol(profile),
            **tuning, "finals": finals,
            "wall_seconds": seconds,
            **compute_seconds(tuning["trial_seconds"] + sum(f.get("seconds") or 0 for f in finals), device)}


def compute_seconds(seconds: float, device: str) -> dict[str, float]:
    """What a cell's runs (trials + final runs, their wall time) cost, by the device they trained on: GPU-seconds
    when ``device`` (a run's ``train.device``; ``auto`` as this host resolves it) is a CUDA device, CPU-seconds
    otherwise; the other is 0."""
    on_gpu = resolve_device(device).type == "cuda"
    return {"cpu_seconds": 0.0 if on_gpu else seconds, "gpu_seconds": seconds if on_gpu else 0.0}


def protocol(profile: Profile) -> dict[str, Any]:
    """The tuning protocol a cell ran under, as its summary states it (the leaderboard quotes it)."""
    return {"suite_version": api.SUITE_VERSION, "tune_seed": profile.tune_seed, "seeds": list(profile.seeds),
            "trials": profile.trials, "sampler": f"common random numbers for {profile.startup_trials} trials, then TPE",
            "tie_break": tune.TIE_BREAK, "pruner": profile.pruner.get("type", "none"),
            "evals": profile.run.train.evals or profile.run.train.epochs}


def _log_cell(parent: Any, summary: dict[str, Any]) -> None:
    tests = [f["test_primary"] for f in summary["finals"] if isinstance(f.get("test_primary"), float)]
    metrics = {"best_dev": summary["best_value"], "trials_complete": summary["n_complete"],
               "trials_pruned": summary["n_pruned"], "tuning_steps": summary["steps"]}
    if tests:
        metrics["test_mean"] = sum(tests) / len(tests)
    parent.log_metrics(metrics, step=0)
    # tags, not params: a topped-up study may change its best configuration, and MLflow params are write-once
    parent.set_tags({f"best.{k}": v for k, v in (summary["best_params"] or {}).items()})
    parent.log_dict_artifact(summary, "cell.json")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written summary beside the last good one

"""Which workers, trials and claims are alive: one place for the grid's liveness rules, on Optuna's public API.

A worker is named ``host:pid:start``. On its own host a worker is alive while its process is (the start time tells
it from a later process that got the same pid). Across hosts a process id says nothing, so where the studies live
in a database (harness.grid.storage) every running trial beats: ``first_beat`` once before the worker names itself,
then ``Heartbeat`` every ``heartbeat_seconds()`` while the objective runs. A trial silent for ``GRACE_BEATS`` beats
is failed by the next worker that looks (``close_stale_trials``, through Optuna's ``fail_stale_trials``), and its
slot is redone. Final-run claims (harness.grid.claims) follow the same clock.

Why ask-and-tell with our own beat, not ``study.optimize(n_trials=1)``: ``optimize`` raises (ValueError, or an
AssertionError in its ``finally``) when another worker failed the trial meanwhile, which the grid must survive, and
its first beat comes asynchronously after the trial is already named. The beat uses two public methods of Optuna's
``RDBStorage`` (``record_heartbeat``, ``get_heartbeat_interval``) on the storage the grid opened itself, and finds a
trial's storage id through ``BaseStorage``'s public lookups; pyproject pins ``optuna<6`` and tests/test_cluster.py
exercises each call, so an Optuna change fails a test instead of silently losing liveness.
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..core.errors import ConfigError

HEARTBEAT_ENV = "REGBENCH_HEARTBEAT_SECONDS"
# A trial beats every minute (in a thread: an epoch can take longer than that on a CPU); one silent for three beats
# is taken as dead.
HEARTBEAT_SECONDS = 60
GRACE_BEATS = 3
WORKER_ATTR = "worker"


def heartbeat_seconds() -> int:
    """The beat of running trials and final-run claims: ``$REGBENCH_HEARTBEAT_SECONDS`` or 60. Longer where workers
    may stall for minutes (suspended jobs, a slow shared disk); every worker of a grid should use the same."""
    text = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not text:
        return HEARTBEAT_SECONDS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"${HEARTBEAT_ENV} must be a whole number of seconds ≥ 1, got {text!r}")
    return int(text)


def worker_id() -> str:
    """``host:pid:start``: the start time (Linux: clock ticks since boot) tells this process from a later one that
    got the same pid, so a dead worker's trial is never kept alive by a stranger."""
    return f"{socket.gethostname()}:{os.getpid()}:{_process_start(os.getpid())}"


def _process_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the name in parentheses


def is_alive(worker: str | None) -> bool:
    """A RUNNING trial counts while its worker lives. Workers on other hosts cannot be checked: assumed alive (a
    database storage's heartbeats decide for them). Older ids without a start time are checked by pid alone."""
    if not worker:
        return False
    host, pid, start = (worker.split(":") + [""])[:3]
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return not start or _process_start(int(pid)) in (start, "")


def is_live(trial: FrozenTrial) -> bool:
    """Whether a RUNNING trial's worker is alive. A trial without a worker yet was just asked for: its worker names
    itself next (ask and naming are two writes), so it is live until a grace period has passed since its start."""
    worker = trial.user_attrs.get(WORKER_ATTR)
    if worker is None:
        started = trial.datetime_start or datetime.now()
        return (datetime.now() - started).total_seconds() < GRACE_BEATS * heartbeat_seconds()
    return is_alive(worker)


def running_elsewhere(study: optuna.Study) -> set[int]:
    """Numbers of RUNNING trials whose workers are alive (this process runs none while it waits)."""
    return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if is_live(t)}


def close_stale_trials(study: optuna.Study, on_close: Callable[[int], object] | None = None) -> list[int]:
    """Mark RUNNING trials of dead workers FAIL (they stop counting; their slot is redone): on this host, a worker
    whose process is gone; on any host, where the storage keeps heartbeats (a database, harness.grid.storage), a trial
    whose heartbeat is older than the grace period."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_live(trial):
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    # FAIL by either rule (or by another worker meanwhile: closing twice is harmless); our trials never end FAIL
    # otherwise, and ones other workers finished since are COMPLETE or PRUNED
    failed = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    closed = sorted(running & failed)
    for number in closed:
        if on_close:
            on_close(number)
    return closed


def beats(storage: Any) -> bool:
    """Whether trials in ``storage`` keep heartbeats (a database opened with a heartbeat interval)."""
    return isinstance(storage, optuna.storages.RDBStorage) and storage.get_heartbeat_interval() is not None


def trial_id(storage: Any, study: optuna.Study, number: int) -> int:
    """The storage's id of trial ``number`` of ``study`` (what Optuna's heartbeat table is keyed by)."""
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def first_beat(storage: Any, study: optuna.Study, trial: optuna.Trial) -> None:
    """Beat once before naming the worker (the thread's first beat comes later). Optuna never fails a trial that
    never beat, so without this a host dying between naming and that beat would leave a trial that looks alive
    forever; with it, a trial is unnamed (live for a grace: ``is_live``) or has a beat that goes silent."""
    if beats(storage):
        storage.record_heartbeat(trial_id(storage, study, trial.number))


class Heartbeat:
    """``with Heartbeat(storage, study, trial):`` beats every interval in a thread while the block runs (an epoch
    can outlast a beat); a no-op where the storage keeps no heartbeats."""

    def __init__(self, storage: Any, study: optuna.Study, trial: optuna.Trial) -> None:
        self.storage, self.study, self.trial = storage, study, trial
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if beats(self.storage):
            beat_id = trial_id(self.storage, self.study, self.trial.number)
            self._thread = threading.Thread(target=self._beat, args=(beat_id,), daemon=True,
                                            name=f"heartbeat trial {self.trial.number}")
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self, beat_id: int) -> None:
        interval = self.storage.get_heartbeat_interval()
        self.storage.record_heartbeat(beat_id)
        while not self._stop.wait(interval):
            self.storage.record_heartbeat(beat_id)

"""Cluster mode: Optuna studies in a database (heartbeats fail a dead host's trials), claims that go stale on any
host, and a grid shared by workers through PostgreSQL (where a server is given: $REGBENCH_TEST_POSTGRES_URL)."""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import socket
import sqlite3
import time
import uuid
import warnings
from pathlib import Path

import optuna
import pytest
from grid_profiles import records_of, write_profile
from optuna.distributions import FloatDistribution
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from regbench.harness import grid
from regbench.harness.cli import main
from regbench.harness.core.errors import ConfigError
from regbench.harness.grid import claims, liveness, tune
from regbench.harness.grid.liveness import HEARTBEAT_ENV
from regbench.harness.grid.profiles import load_profile
from regbench.harness.grid.storage import STORAGE_ENV, describe, open_storage

PG_ENV = "REGBENCH_TEST_POSTGRES_URL"  # e.g. postgresql://regbench:regbench@127.0.0.1/postgres (.ci/run sets it)
REMOTE = "another-host.example:4242"  # a worker on another machine: its process id cannot be checked from here


def test_storage_defaults_to_a_journal_beside_the_results(tmp_path, monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    assert isinstance(open_storage(tmp_path / "out"), JournalStorage)
    assert (tmp_path / "out" / "optuna.journal").exists()
    monkeypatch.setenv(STORAGE_ENV, str(tmp_path / "shared" / "studies.journal"))
    open_storage(tmp_path / "out")
    assert (tmp_path / "shared" / "studies.journal").exists()
    storage = open_storage(tmp_path / "out", f"sqlite:///{tmp_path / 'optuna.db'}")
    assert isinstance(storage, RDBStorage) and storage.get_heartbeat_interval() == 60


@pytest.mark.parametrize(("url", "message"), [
    ("nosuchdb://host/db", "'nosuchdb' is not a database SQLAlchemy knows; use postgresql://"),
    ("mysql://me:secret@127.0.0.1/db", r"--storage mysql://me:\*\*\*@127.0.0.1/db needs PyMySQL or mysqlclient"),
    ("postgresql://me:secret@127.0.0.1:1/db", r"cannot reach the Optuna storage postgresql://me:\*\*\*@127.0.0.1:1/db"),
])
def test_a_bad_storage_is_one_line_naming_it_and_no_run_starts(tmp_path, url, message, capsys):
    with pytest.raises(ConfigError, match=message):
        open_storage(tmp_path, url)
    profile = write_profile(tmp_path)
    assert main(["bench", "--profile", str(profile), "--out", str(tmp_path / "out"), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regbench: error:") and len(err.splitlines()) == 1 and "secret" not in err
    assert not (tmp_path / "out").exists()


def test_a_directory_is_not_a_journal(tmp_path):
    with pytest.raises(ConfigError, match="is a directory; give a journal file path"):
        open_storage(tmp_path, str(tmp_path))
    assert describe("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


def _rdb_study(tmp_path: Path, heartbeat: int = 1) -> tuple[optuna.storages.RDBStorage, optuna.Study]:
    """A study in SQLite with a 1 s beat, so a 3 s grace: room for SQLite's whole-second timestamps and a late beat
    on a busy machine (a beating trial's last beat is at most ~2 s old, a silent one's ≥ 4 s after the sleeps)."""
    storage = open_storage(tmp_path, f"sqlite:///{tmp_path / 'optuna.db'}", heartbeat=heartbeat)
    return storage, tune.open_study(storage, "cluster-test", "w0", {"type": "none"})


def _running_trial_of(study: optuna.Study, worker: str) -> optuna.Trial:
    with warnings.catch_warnings():  # "heartbeat … with Study.optimize": the test drives it by hand
        warnings.simplefilter("ignore", UserWarning)
        trial = study.ask({"lr": FloatDistribution(1e-5, 1e-3, log=True)})
    trial.set_user_attr(liveness.WORKER_ATTR, worker)
    return trial


def test_a_trial_of_a_host_that_went_silent_is_failed_and_its_slot_redone(tmp_path):
    storage, study = _rdb_study(tmp_path)
    silent = _running_trial_of(study, REMOTE)
    liveness.first_beat(storage, study, silent)  # it beat once, then its host died
    alive = _running_trial_of(study, REMOTE)
    with liveness.Heartbeat(storage, study, alive):  # still beating (every second)
        time.sleep(5)
        assert tune.counted(study) == 2  # another host's worker cannot be checked by its pid: it counts ...
        closed = []
        assert liveness.close_stale_trials(study, closed.append) == [silent.number] == closed  # ... until it is silent
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {silent.number: TrialState.FAIL, alive.number: TrialState.RUNNING}
    study.tell(alive, 0.5)
    stale = []
    ran = tune.tune(study, 3, {"lr": FloatDistribution(1e-5, 1e-3, log=True)},
                    lambda trial: tune.TrialOutcome(0.6, False, 1, 0.0), storage=storage, on_stale=stale.append)
    assert ran == 2 and not stale  # the failed slot is redone: 3 complete in all
    assert collections.Counter(t.state for t in study.get_trials()) == {TrialState.COMPLETE: 3, TrialState.FAIL: 1}


def test_a_trial_beats_while_it_runs(tmp_path):
    storage, study = _rdb_study(tmp_path)
    seen = []

    def objective(trial):
        time.sleep(4.5)  # longer than the grace: without fresh beats, another worker would fail it now
        with sqlite3.connect(tmp_path / "optuna.db") as db:
            seen.append(db.execute("SELECT strftime('%s', CURRENT_TIMESTAMP) - strftime('%s', heartbeat) "
                                   "FROM trial_heartbeats WHERE trial_id = ?",
                                   (liveness.trial_id(storage, study, trial.number),)).fetchall())
        seen.append(liveness.close_stale_trials(study))
        return tune.TrialOutcome(0.5, False, 1, 4.5)

    tune.tune(study, 1, {"lr": FloatDistribution(1e-5, 1e-3, log=True)}, objective, storage=storage)
    (age,), closed = seen[0][0], seen[1]
    assert age <= 2 and closed == [] and study.get_trials()[0].state == TrialState.COMPLETE


def _write_claim(path: Path, owner: str, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(owner)
    then = time.time() - age
    os.utime(path, (then, then))


def test_claims_are_kept_fresh_while_held_and_taken_over_when_silent(tmp_path):
    path = tmp_path / "claims" / "run-key"
    with claims.Claim(path, refresh=0.1) as claimed:
        assert claimed and path.read_text() == liveness.worker_id()
        _write_claim(path, liveness.worker_id(), age=100)
        time.sleep(0.5)
        assert time.time() - path.stat().st_mtime < 1  # refreshed by its holder
    assert not path.exists()
    for owner, age, taken in [(REMOTE, 10, False), (REMOTE, 1000, True), ("", 10, False), ("", 1000, True),
                              (f"{socket.gethostname()}:{2 ** 22 + 7}", 10, True),  # a pid no process has
                              (f"{socket.gethostname()}:{os.getpid()}:1", 10, True)]:  # this pid, another process
        _write_claim(path, owner, age)
        with claims.Claim(path, grace=180) as claimed:
            assert claimed == taken, (owner, age)
            assert path.read_text() == (liveness.worker_id() if taken else owner)
        if not taken:
            path.unlink()


def test_a_grid_on_a_database_storage_resumes_exactly(tmp_path, data_dir):
    profile = load_profile(str(write_profile(tmp_path, trials=3, seeds=[1, 2], epochs=1)))
    out, url = tmp_path / "out", f"sqlite:///{tmp_path / 'optuna.db'}"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False, storage=url)
    assert not (out / "optuna.journal").exists()
    summaries = {path: path.read_bytes() for path in out.glob("cells/*/*/*.json")}
    again = grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False, storage=url)
    assert again["cells"][0]["trials_run_now"] == 0
    # a cell found complete keeps the summary of the grid that ran it (its wall time, its trials run)
    assert summaries and {path: path.read_bytes() for path in summaries} == summaries
    (summary,) = optuna.get_all_study_summaries(open_storage(out, url))
    assert summary.n_trials == 3
    assert collections.Counter(r["run_info"]["seed"] for r in records_of(out)) == {1: 1, 2: 1}


@pytest.fixture
def postgres_url():
    """A fresh database on the server $REGBENCH_TEST_POSTGRES_URL names, dropped afterwards."""
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"no PostgreSQL server (set {PG_ENV}; .ci/run starts one)")
    import psycopg

    name = f"regbench_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_two_workers_share_a_grid_through_postgresql(tmp_path, data_dir, postgres_url):
    from regbench.harness.grid.parallel import run_parallel

    profile = load_profile(str(write_profile(tmp_path, trials=4, seeds=[1, 2], epochs=1)))
    out = tmp_path / "out"
    assert "sst2" in run_parallel(profile, str(out), workers=2, data_dir=data_dir, storage=postgres_url)
    storage = open_storage(out, postgres_url)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len({t.number for t in trials}) == len(trials)
    assert 4 <= sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) <= 5  # overshoot ≤ workers − 1
    assert collections.Counter(r["run_info"]["seed"] for r in records_of(out)) == {1: 1, 2: 1}
    assert not (out / "optuna.journal").exists()


def test_a_trial_failed_meanwhile_by_another_worker_does_not_stop_this_one(tmp_path):
    storage, study = _rdb_study(tmp_path)
    failed_once = []

    def objective(trial):  # another worker took this trial for dead (this process stalled past the grace)
        if not failed_once:
            failed_once.append(trial.number)
            study.tell(trial.number, state=TrialState.FAIL)
        return tune.TrialOutcome(0.5, False, 1, 0.0)

    assert tune.tune(study, 2, {"lr": FloatDistribution(1e-5, 1e-3, log=True)}, objective, storage=storage) == 3
    assert collections.Counter(t.state for t in study.get_trials()) == {TrialState.COMPLETE: 2, TrialState.FAIL: 1}



def test_a_trial_failed_just_before_its_result_is_told_does_not_stop_this_one(tmp_path, monkeypatch):
    """The window after the trial's last user attribute and before `tell`: Optuna then raises ValueError, not
    UpdateFinishedTrialError, unless told to skip finished trials."""
    storage, study = _rdb_study(tmp_path)
    tell, failed = study.tell, []

    def failed_meanwhile(trial, *args, **kwargs):
        if not failed:
            failed.append(tell(trial.number if hasattr(trial, "number") else trial, state=TrialState.FAIL))
        return tell(trial, *args, **kwargs)

    monkeypatch.setattr(study, "tell", failed_meanwhile)
    objective = lambda trial: tune.TrialOutcome(0.5, False, 1, 0.0)  # noqa: E731
    assert tune.tune(study, 2, {"lr": FloatDistribution(1e-5, 1e-3, log=True)}, objective, storage=storage) == 3
    assert collections.Counter(t.state for t in study.get_trials()) == {TrialState.COMPLETE: 2, TrialState.FAIL: 1}

def test_a_bad_heartbeat_setting_is_one_line_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(HEARTBEAT_ENV, "1m")
    message = r"REGBENCH_HEARTBEAT_SECONDS must be a whole number of seconds ≥ 1, got '1m'"
    with pytest.raises(ConfigError, match=message):
        open_storage(tmp_path, f"sqlite:///{tmp_path / 'optuna.db'}")
    assert main(["bench", "--profile", str(write_profile(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    assert "REGBENCH_HEARTBEAT_SECONDS" in capsys.readouterr().err and not (tmp_path / "out").exists()


def _worker_on_another_host(profile_path: str, out: str, url: str, data_dir: str) -> None:
    """A grid worker that believes it runs on another machine (spawned: the patch stays in that process)."""
    socket.gethostname = lambda: REMOTE.split(":")[0]
    grid.run_grid(load_profile(profile_path), out, data_dir=data_dir, track=False, progress=False, storage=url)


def _study_states(storage) -> collections.Counter:
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return collections.Counter()
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    return collections.Counter(t.state for t in study.get_trials())


@pytest.mark.parametrize("killed_in", ["trial", "final run"])
def test_a_worker_killed_on_another_host_is_taken_over(tmp_path, data_dir, monkeypatch, killed_in):
    monkeypatch.setenv(HEARTBEAT_ENV, "1")  # a 3 s grace, for trials and claims; the spawned worker inherits it
    path = str(write_profile(tmp_path, trials=3, seeds=[1, 2], epochs=4))
    out, url = tmp_path / "out", f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(out, url)
    proc = multiprocessing.get_context("spawn").Process(target=_worker_on_another_host,
                                                         args=(path, str(out), url, data_dir))
    proc.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.is_alive():
        states = _study_states(storage)
        if (killed_in == "trial" and states[TrialState.COMPLETE] >= 1 and states[TrialState.RUNNING]) or \
                (killed_in == "final run" and any((out / "claims").glob("*"))):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert not list(out.glob("records/*/*/*.json")), f"the kill should land in a {killed_in}"
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("this worker waited for the killed one's trial for ever"))
    signal.alarm(150)  # a hang fails the test instead of the whole CI run
    try:
        summary = grid.run_grid(load_profile(path), out, data_dir=data_dir, track=False, progress=False, storage=url)
    finally:
        signal.alarm(0)
    states = _study_states(storage)
    assert states[TrialState.COMPLETE] == 3 and states[TrialState.FAIL] == (killed_in == "trial")
    assert collections.Counter(r["run_info"]["seed"] for r in records_of(out)) == {1: 1, 2: 1}
    assert not list((out / "claims").glob("*")) and summary["cells"][0]["n_complete"] == 3


def test_a_trial_not_yet_named_by_its_worker_is_live_until_the_grace_ends(tmp_path, monkeypatch):
    """ask and naming the worker are two writes: another worker looking in between must not fail the trial (the
    race a second worker hit when it checked for stale trials before every trial)."""
    monkeypatch.setenv(HEARTBEAT_ENV, "1")  # grace 3 s
    storage = open_storage(tmp_path)
    study = tune.open_study(storage, "unnamed", "w0", {"type": "none"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        unnamed = study.ask({"lr": FloatDistribution(1e-5, 1e-3, log=True)})
    assert liveness.close_stale_trials(study) == [] and tune.counted(study) == 1
    time.sleep(3.2)  # its worker died between the two writes
    assert liveness.close_stale_trials(study) == [unnamed.number] and tune.counted(study) == 0


def test_a_trial_beats_once_before_its_worker_names_itself(tmp_path):
    """Optuna never fails a trial that never beat: a host dying after naming itself but before its heartbeat
    thread's first beat would leave a trial every other worker waits for, for ever."""
    storage, study = _rdb_study(tmp_path)
    trial = _running_trial_of(study, REMOTE)  # asked and named, by hand: no beat yet
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        beats = "SELECT COUNT(*) FROM trial_heartbeats WHERE trial_id = ?"
        trial_id = liveness.trial_id(storage, study, trial.number)
        assert db.execute(beats, (trial_id,)).fetchone() == (0,)
        liveness.first_beat(storage, study, trial)  # what tune does between ask and naming
        assert db.execute(beats, (trial_id,)).fetchone() == (1,)

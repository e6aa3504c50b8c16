"""Several workers on one grid: shared studies without duplicate trials, one final run per seed, waiting for the
last trial, claims checked again, `--overwrite always` across workers."""

from __future__ import annotations

import collections
import socket
import threading
import time
from pathlib import Path

import optuna
import pytest
from grid_profiles import mlflow_runs, records_of, write_profile

from regbench.harness import grid
from regbench.harness.grid import claims, liveness, tune
from regbench.harness.grid.profiles import load_profile
from regbench.harness.io import tracking


def test_two_workers_share_one_study_without_duplicates(tmp_path, data_dir):
    profile = load_profile(str(write_profile(tmp_path, trials=4, seeds=[1, 2], epochs=1)))
    out = tmp_path / "out"
    from regbench.harness.grid.parallel import run_parallel

    text = run_parallel(profile, str(out), workers=2, data_dir=data_dir)
    assert "sst2" in text
    storage = grid.open_storage(out)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len({t.number for t in trials}) == len(trials)
    assert 4 <= sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) <= 5  # overshoot ≤ workers − 1
    seeds = collections.Counter(r["run_info"]["seed"] for r in records_of(out))
    assert seeds == {1: 1, 2: 1}
    # both workers re-ran the best of all trials: neither started its final runs before the other's last trial ended
    best = max((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, -t.number))
    assert all(r["run_info"]["params"] == best.params for r in records_of(out))
    runs = mlflow_runs(out, "regbench-grid")
    assert len({r.data.tags[tracking.KEY_TAG] for r in runs}) == len(runs)


def test_a_worker_waits_for_another_workers_last_trial_before_its_final_runs(tmp_path):
    from optuna.distributions import FloatDistribution

    storage = grid.open_storage(tmp_path)
    study = tune.open_study(storage, "wait-test", "w0", {"type": "none"})
    space = {"lr": FloatDistribution(1e-5, 1e-3, log=True)}
    other = study.ask(space)
    other.set_user_attr(liveness.WORKER_ATTR, f"{socket.gethostname()}:1")  # pid 1: alive for the whole test
    finished_at = []

    def other_worker_finishes() -> None:
        time.sleep(1.5)
        study.tell(other, 0.9)
        finished_at.append(time.monotonic())

    thread = threading.Thread(target=other_worker_finishes)
    thread.start()
    ran = tune.tune(study, 2, space, lambda trial: tune.TrialOutcome(0.5, False, 1, 0.0),
                    storage=storage, poll_seconds=0.1)
    returned_at = time.monotonic()
    thread.join()
    assert ran == 1 and finished_at and returned_at >= finished_at[0]
    assert tune.summary(study)["best_params"] == other.params


def test_a_seed_another_worker_finished_just_before_the_claim_is_not_run_again(tmp_path, data_dir, monkeypatch):
    profile = load_profile(str(write_profile(tmp_path, seeds=[1])))
    out = tmp_path / "out"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    (path,) = out.glob("records/*/*/*.json")
    done = path.read_bytes()
    path.unlink()  # not there yet when this worker looks ...
    enter = claims.Claim.__enter__

    def other_worker_finishes_first(claim):  # ... then another worker writes it and releases its claim
        path.write_bytes(done)
        return enter(claim)

    monkeypatch.setattr(claims.Claim, "__enter__", other_worker_finishes_first)
    monkeypatch.setattr(grid.api, "run", lambda *a, **k: pytest.fail("ran a seed another worker had finished"))
    summary = grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    assert list(out.glob("records/*/*/*.json")) == [path]
    assert [f["record"] for f in summary["cells"][0]["finals"]] == [str(path)]


def test_overwrite_always_reruns_each_seed_once_across_workers(tmp_path, data_dir, monkeypatch):
    profile = load_profile(str(write_profile(tmp_path, trials=1)))
    out = tmp_path / "out"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    first = {p.name for p in out.glob("records/*/*/*.json")}
    started = time.time()
    grid.run_grid(profile, out, overwrite="always", data_dir=data_dir, track=False, progress=False, started=started)
    paths = list(out.glob("records/*/*/*.json"))
    assert len(paths) == 4 and first < {p.name for p in paths}  # old records stay; each seed ran once more
    seeds = collections.Counter(r["run_info"]["seed"] for r in records_of(out))
    assert seeds == {1: 2, 2: 2}
    # a second worker of the same `always` grid takes the seeds the first one re-ran as done
    monkeypatch.setattr(grid.api, "run", lambda *a, **k: pytest.fail("re-ran a seed this grid had re-run"))
    summary = grid.run_grid(profile, out, overwrite="always", data_dir=data_dir, track=False, progress=False,
                            started=started)
    assert {Path(f["record"]).name for f in summary["cells"][0]["finals"]} == {p.name for p in paths} - first

"""The grid: profiles, cell keys, exact budgets on resume, kill-and-restart, failures, workers, test isolation."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from grid_profiles import BASE, mlflow_runs, records_of, write_profile

from regbench.harness import api, grid
from regbench.harness.cli import main
from regbench.harness.core.errors import ConfigError, RegbenchError
from regbench.harness.grid import liveness, tune
from regbench.harness.grid.profiles import load_profile, parse_profile
from regbench.harness.io import tracking
from regbench.harness.run.method import METHODS, Method, register_method


def test_shipped_profiles_load_and_include_std():
    for name in ("smoke", "quick", "small", "paper"):
        profile = load_profile(name)
        assert "std" in profile.methods and profile.trials >= 2
        assert Path(profile.path).read_text().startswith("#")  # begins with how to run it
    assert len(load_profile("paper").tasks) >= 20


@pytest.mark.parametrize(("change", "message"), [
    ({"noise": [0.0, 1.0]}, r"noise rate 1.0 must be a number in \[0, 1\)"),
    ({"tasks": []}, "tasks is empty"),
    ({"methods": ["l2sp-typo"]}, "method"),
    ({"methods": ["std++"]}, "must include std"),
    ({"epoch": 3}, "unknown key 'epoch'; did you mean 'epochs'"),
    ({"search_space": {"std": {"lr": {"low": 1e-3, "high": 1e-5, "log": True}}}}, "low 0.001 is greater than high"),
    ({"sizes": ["k0"]}, "at least 1 example"),
    ({"ood": "yes"}, "ood must be true or false"),
    ({"pruner": {"type": "halving", "reduction_factr": 2}},
     "pruner halving takes min_resource, reduction_factor, not 'reduction_factr'; did you mean 'reduction_factor'"),
    ({"pruner": {"type": "median", "min_resource": 2}}, "pruner median takes n_startup_trials, n_warmup_steps, not"),
    ({"pruner": {"type": "halving", "reduction_factor": 1}}, "pruner reduction_factor must be an integer ≥ 2, got 1"),
    ({"blocks": [{"tasks": ["trec"]}]},
     r"blocks\[1\].tasks must list values from the profile's tasks \['sst2'\], got 'trec'"),
    ({"blocks": [{"noise": [0.4]}]}, r"blocks\[1\].noise must list values from the profile's noise \[0.0\], got 0.4"),
    ({"blocks": [{"task": ["sst2"]}]}, "blocks\\[1\\] has unknown key 'task'"),
    ({"blocks": []}, "blocks must be a non-empty list"),
])
def test_bad_profiles_fail_with_one_line_before_any_run(tmp_path, change, message, capsys):
    path = write_profile(tmp_path, **change)
    with pytest.raises(RegbenchError, match=message):
        load_profile(str(path))
    assert main(["bench", "--profile", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regbench: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unknown_profile_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'smoke'"):
        load_profile("smok")


def test_cell_keys_are_stable_and_distinct(data_dir):
    profile = parse_profile({**BASE, "noise": [0.0, 0.2], "methods": ["std", "std++"], "sizes": ["n16", "k8"]}, "t")
    first = grid.plan_cells(profile, data_dir)
    assert [c.key for c in first] == [c.key for c in grid.plan_cells(profile, data_dir)]
    assert len({c.key for c in first}) == len(first) == 8
    more_seeds = parse_profile({**BASE, "noise": [0.0, 0.2], "methods": ["std", "std++"], "sizes": ["n16", "k8"],
                                "seeds": [1, 2, 3], "trials": 5}, "t")
    assert [c.key for c in grid.plan_cells(more_seeds, data_dir)] == [c.key for c in first]  # budget/seeds: same study
    lr = {"low": 1e-4, "high": 1e-3, "log": True}
    other_space = parse_profile({**BASE, "search_space": {"std": {"lr": lr}}}, "t")
    assert grid.plan_cells(other_space, data_dir)[0].key != first[0].key


def test_blocks_run_a_union_of_sub_grids_with_the_full_product_s_keys(data_dir):
    full = parse_profile({**BASE, "tasks": ["sst2", "trec"], "noise": [0.0, 0.2], "sizes": ["n16", "k8"]}, "t")
    union = parse_profile({**BASE, "tasks": ["sst2", "trec"], "noise": [0.0, 0.2], "sizes": ["n16", "k8"],
                           "blocks": [{"sizes": ["n16"], "noise": [0.0]},                    # every task clean at n16
                                      {"tasks": ["sst2"], "noise": [0.0, 0.2], "sizes": "n16"},  # noise on one task
                                      {"tasks": "trec", "sizes": ["k8"], "noise": 0}]}, "t")
    cells = {(c.task, c.size, c.noise): c.key for c in grid.plan_cells(union, data_dir)}
    assert list(cells) == [("sst2", "n16", 0.0), ("sst2", "n16", 0.2), ("trec", "n16", 0.0), ("trec", "k8", 0.0)]
    keys = {(c.task, c.size, c.noise): c.key for c in grid.plan_cells(full, data_dir)}
    assert all(keys[combination] == key for combination, key in cells.items())  # sub-grids never move a key


def test_plan_marks_cells_a_task_cannot_serve(tmp_path, data_dir, capsys):
    path = write_profile(tmp_path, tasks=["sst2", "stsb"], sizes=["k8", "n16"])
    assert main(["plan", "--profile", str(path), "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "n/a: per-class size k8 needs a classification task" in out
    assert "3 runnable, 1 n/a" in out and "estimated cost" in out


def test_plan_counts_post_training_extras_and_the_profile_can_turn_them_off(data_dir, tmp_path):
    from regbench.harness.grid import plan

    with_extras = parse_profile(BASE, "t")
    without = parse_profile({**BASE, "ood": False, "collapse": False}, "t")
    on, off = plan.estimate(with_extras, data_dir)[0], plan.estimate(without, data_dir)[0]
    assert on.trial_seconds == off.trial_seconds and on.final_seconds > off.final_seconds  # SST-2 has OOD sets
    config = grid.template(without, "sst2", "n16", 0.0, "std", tmp_path, None)
    assert (config.ood, config.collapse) == (False, False)
    assert grid.template(with_extras, "sst2", "n16", 0.0, "std", tmp_path, None).ood


def test_interrupted_study_tops_up_to_exactly_the_budget(tmp_path):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log")))
    space = {"lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)}
    study = tune.open_study(storage, "cellA", "w0", {"type": "none"})
    assert tune.tune(study, 2, space, lambda t: tune.TrialOutcome(t.params["lr"], False, 1, 0.0), storage=storage) == 2
    dead = study.ask(space)  # a trial whose worker was killed mid-run
    dead.set_user_attr(liveness.WORKER_ATTR, f"{os.uname().nodename}:999999999")
    study = tune.open_study(storage, "cellA", "w1", {"type": "none"})
    assert liveness.close_stale_trials(study) == [dead.number]
    diverged = lambda t: tune.TrialOutcome(None, False, 1, 0.0)  # noqa: E731
    assert tune.tune(study, 4, space, diverged, storage=storage) == 2  # diverged → counted
    states = collections.Counter(t.state.name for t in study.get_trials())
    assert states == {"COMPLETE": 4, "FAIL": 1}
    assert tune.tune(study, 4, space, lambda t: pytest.fail("budget already used"), storage=storage) == 0


class NaNAfterFirstStep(Method):
    """Test-only method: its extra loss becomes NaN after the first step (a diverging configuration)."""

    name = "nan-test"

    def loss(self, model, batch, outputs):
        self.steps = getattr(self, "steps", 0) + 1
        return {"boom": outputs.logits.sum() * (math.nan if self.steps > 1 else 0.0)}


@pytest.fixture
def nan_method():
    register_method(NaNAfterFirstStep)
    yield "nan-test"
    METHODS.unregister("nan-test")


def test_diverging_config_is_recorded_and_the_grid_goes_on(tmp_path, data_dir, nan_method):
    profile = load_profile(str(write_profile(tmp_path, methods=["std", nan_method], seeds=[1])))
    out = tmp_path / "out"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    by_method = {r["run_info"]["method"]: r for r in records_of(out)}
    assert by_method[nan_method]["run_info"]["status"] == "diverged"
    assert by_method["std"]["run_info"]["status"] in ("ok", "failed")
    cell = next((out / "cells" / "sst2" / nan_method).glob("*.json"))
    assert '"value": -1.0' in cell.read_text()  # trials completed with the failure score, so they counted


def test_test_split_is_never_read_during_tuning_or_epoch_selection(tmp_path, data_dir, monkeypatch):
    events: list[str] = []
    phase = {"now": None}

    class Guarded(list):
        def __iter__(self):
            events.append(f"test-read:{phase['now']}")
            return super().__iter__()

        def __getitem__(self, item):
            events.append(f"test-read:{phase['now']}")
            return super().__getitem__(item)

    real_prepare, real_run, real_eval = api.prepare_data, api.run, api.train.__globals__["evaluate_model"]

    def prepare(*args, **kwargs):
        data, info = real_prepare(*args, **kwargs)
        return {**data, "test": Guarded(data["test"]) if data["test"] is not None else None}, info

    def run(config, hooks=None):
        phase["now"] = hooks.phase
        events.append(f"start:{phase['now']}")
        return real_run(config, hooks)

    def evaluate(*args, **kwargs):
        events.append(f"eval:{phase['now']}")
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(api, "prepare_data", prepare)
    monkeypatch.setattr(grid.api, "run", run)
    monkeypatch.setitem(api.train.__globals__, "evaluate_model", evaluate)
    grid.run_grid(load_profile(str(write_profile(tmp_path))), tmp_path / "out", data_dir=data_dir, track=False,
                  progress=False)
    assert not [e for e in events if e == "test-read:trial"]
    runs = " ".join(events).split("start:")[1:]
    finals = [r for r in runs if r.startswith("final")]
    # every final run trains afresh (the tuning seed, 0, is never a reported seed): 2 dev evaluations, then the test
    assert len(finals) == 2 and sorted(r.count("eval:final") for r in finals) == [3, 3]
    for r in finals:  # the test split is first read after epoch selection: only its own scoring follows
        assert r[r.index("test-read"):].count("eval:final") == 1


def test_killed_grid_restarts_without_duplicates(tmp_path, data_dir):
    path = write_profile(tmp_path, tasks=["sst2", "rte"], seeds=[1, 2, 3], trials=3, epochs=3)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "regbench.harness.cli", "bench", "--profile", str(path), "--out", str(out),
               "--data-dir", data_dir]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("records/*/*/*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(out.glob("records/*/*/*.json"))) < 6, "the kill should land mid-grid"
    assert main(["bench", "--profile", str(path), "--out", str(out), "--data-dir", data_dir]) == 0
    recs = records_of(out)
    keys = collections.Counter((r["run_info"]["cell_key"], r["run_info"]["seed"]) for r in recs)
    assert len(keys) == 6 and set(keys.values()) == {1}
    runs = mlflow_runs(out, "regbench-grid")
    run_keys = collections.Counter(r.data.tags[tracking.KEY_TAG] for r in runs)
    assert set(run_keys.values()) == {1}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    phases = collections.Counter(r.data.tags["phase"] for r in runs if r.info.status == "FINISHED")
    assert phases == {"cell": 2, "trial": 6, "final": 6}
    finals = [r for r in runs if r.data.tags["phase"] == "final"]
    cells = {r.info.run_id: r for r in runs if r.data.tags["phase"] == "cell"}
    assert all(r.data.tags["mlflow.parentRunId"] in cells for r in finals)


def test_a_grid_run_again_from_scratch_proposes_the_same_trials(tmp_path, data_dir):
    path = write_profile(tmp_path, trials=3, seeds=[1], epochs=1)
    proposed = []
    for out in (tmp_path / "a", tmp_path / "b"):  # separate processes: nothing in memory carries over
        subprocess.run([sys.executable, "-m", "regbench.harness.cli", "bench", "--profile", str(path), "--out",
                        str(out), "--data-dir", data_dir, "--no-track"], check=True, capture_output=True,
                       env={**os.environ, "TQDM_DISABLE": "1"})
        (cell,) = out.glob("cells/*/*/*.json")
        proposed.append([(t["params"], t["value"]) for t in json.loads(cell.read_text())["trials"]])
        proposed.append(sorted((r["run_info"]["seed"], r["metrics"]["test"]) for r in records_of(out)))
    assert proposed[0] == proposed[2] and len({repr(p) for p, _ in proposed[0]}) == 3  # same trials, same scores
    assert proposed[1] == proposed[3]  # and the same final runs


class RejectsThisModel(Method):
    """Test-only method: every configuration is impossible for the model (as re-init of too many layers is)."""

    name = "reject-test"

    def prepare(self, ctx):
        raise ConfigError("reject-test: this model cannot take it")


def test_a_configuration_the_model_cannot_take_does_not_stop_the_grid(tmp_path, data_dir):
    register_method(RejectsThisModel)
    try:
        profile = load_profile(str(write_profile(tmp_path, methods=["reject-test", "std"], seeds=[1])))
        out = tmp_path / "out"
        grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    finally:
        METHODS.unregister("reject-test")
    assert [r["run_info"]["method"] for r in records_of(out)] == ["std"]
    cell = next((out / "cells" / "sst2" / "reject-test").glob("*.json")).read_text()
    assert '"status": "error"' in cell and "cannot take it" in cell


def test_cell_keys_do_not_depend_on_where_the_data_lives(tmp_path, data_dir):
    import shutil

    copy = tmp_path / "mirror"
    shutil.copytree(Path(data_dir) / "glue" / "sst2", copy / "glue" / "sst2")
    profile = parse_profile({**BASE, "ood": False}, "t")  # the copy has sst2 alone, not its OOD sets (plan checks them)
    assert [c.key for c in grid.plan_cells(profile, str(copy))] == [c.key for c in grid.plan_cells(profile, data_dir)]


def test_pruner_sees_the_best_dev_score_so_far():
    class FakeTrial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return False

    trial = FakeTrial()
    report = grid.pruning_report(trial)
    for epoch, value in enumerate([0.5, 0.4, float("nan"), 0.625, 0.5], start=1):
        assert report(epoch, {"dev_primary": value}) is False
    assert trial.reported == [(1, 0.5), (2, 0.5), (4, 0.625), (5, 0.625)]  # a dip never lowers it; NaN is skipped


def test_no_final_record_is_a_tuning_trial_or_carries_the_tuning_seed(tmp_path, data_dir):
    profile = load_profile(str(write_profile(tmp_path, trials=3, seeds=[1, 2])))
    assert profile.tune_seed == 0 and 0 not in profile.seeds
    out = tmp_path / "out"
    grid.run_grid(profile, out, data_dir=data_dir, progress=False)
    finals = records_of(out)
    assert sorted(r["run_info"]["seed"] for r in finals) == [1, 2]
    assert {r["run_info"]["phase"] for r in finals} == {"final"}
    assert all("trained_in" not in r["train_info"] for r in finals)
    (cell_file,) = out.glob("cells/sst2/std/*.json")
    cell = json.loads(cell_file.read_text())
    assert cell["protocol"]["tune_seed"] == 0 and cell["protocol"]["suite_version"] == api.SUITE_VERSION == 2
    assert all(f["steps"] > 0 for f in cell["finals"])  # each trained
    trials = [r for r in mlflow_runs(out, "regbench-grid") if r.data.tags.get("phase") == "trial"]
    assert len(trials) == 3 and {r.data.tags["seed"] for r in trials} == {"0"}
    # a trial's run key (same params, tuning seed) is never a final run's key
    best = grid.with_params(grid.template(profile, "sst2", "n16", 0.0, "std", out, None, data_dir, track=False),
                            cell["best_params"])
    assert api.run_key(best) not in {r["run_info"]["run_id"] for r in finals}


def test_a_profile_may_not_tune_on_a_reported_seed(tmp_path):
    with pytest.raises(ConfigError, match="tune_seed must be an integer outside seeds"):
        load_profile(str(write_profile(tmp_path, tune_seed=1)))


def test_cell_cost_is_gpu_seconds_on_a_cuda_device_and_cpu_seconds_otherwise(monkeypatch) -> None:
    import torch

    from regbench.harness.grid import runner

    monkeypatch.setattr(runner, "resolve_device", lambda name: torch.device("cuda" if name == "auto" else name))
    assert grid.compute_seconds(12.5, "cuda:0") == {"cpu_seconds": 0.0, "gpu_seconds": 12.5}
    assert grid.compute_seconds(12.5, "auto") == {"cpu_seconds": 0.0, "gpu_seconds": 12.5}  # auto found a GPU
    assert grid.compute_seconds(12.5, "cpu") == {"cpu_seconds": 12.5, "gpu_seconds": 0.0}

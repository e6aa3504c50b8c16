"""The tuning and evaluation protocol of suite version 2: common random numbers across methods, an equal
dev-evaluation schedule, MVCR's phase-2 LR restart, failure judged on the clean test set, the tie-break rule."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from grid_profiles import records_of, write_profile
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from regbench.harness import api, grid
from regbench.harness.grid import tune
from regbench.harness.grid.profiles import load_profile
from regbench.harness.run.method import METHODS, SHARED_LR_RANGE, Method, register_method
from regbench.harness.run.train import eval_points


# ---- common random numbers ----------------------------------------------------------------------------------------
def _asked(block: str, space: dict, trials: int) -> list[dict]:
    study = optuna.create_study(sampler=tune.CommonRandomSampler(block, startup_trials=10, seed=123),
                                direction="maximize")
    out = []
    for _ in range(trials):
        trial = study.ask(fixed_distributions=space)
        study.tell(trial, 0.5)
        out.append(trial.params)
    return out


def test_trial_i_of_two_methods_in_a_block_draws_the_same_lr_whatever_else_they_tune():
    std = _asked("block-a", {"lr": SHARED_LR_RANGE}, 6)
    mvcr = _asked("block-a", {"lr": SHARED_LR_RANGE, "n_layers_with_ae": IntDistribution(1, 3)}, 6)
    reordered = _asked("block-a", {"alpha": FloatDistribution(0.0, 1.0), "lr": SHARED_LR_RANGE}, 6)
    assert [p["lr"] for p in std] == [p["lr"] for p in mvcr] == [p["lr"] for p in reordered]
    assert len({p["lr"] for p in std}) == 6  # distinct draws, not one value repeated
    other_block = _asked("block-b", {"lr": SHARED_LR_RANGE}, 6)
    assert [p["lr"] for p in other_block] != [p["lr"] for p in std]


def test_a_narrower_range_gets_the_same_quantile():
    wide = _asked("b", {"lr": FloatDistribution(1e-5, 1e-3, log=True)}, 4)
    narrow = _asked("b", {"lr": FloatDistribution(1e-5, 1e-4, log=True)}, 4)
    for w, n in zip(wide, narrow, strict=True):
        assert math.log(w["lr"] / 1e-5) / math.log(100) == pytest.approx(math.log(n["lr"] / 1e-5) / math.log(10))


def test_draws_are_stratified_and_every_kind_of_distribution_stays_in_range():
    draws = [tune.common_uniform("blk", "lr", i) for i in range(8)]
    assert sorted(int(u * 8) for u in draws) == list(range(8))  # one draw per eighth of [0, 1)
    for u in (0.0, 0.3, 0.999999):
        assert 1 <= tune.quantile(IntDistribution(1, 3), u) <= 3
        assert 1 <= tune.quantile(IntDistribution(1, 8, log=True), u) <= 8
        assert tune.quantile(CategoricalDistribution(["a", "b"]), u) in ("a", "b")
        assert 0.1 <= tune.quantile(FloatDistribution(0.1, 0.5, step=0.1), u) <= 0.5
    assert tune.quantile(IntDistribution(1, 8, log=True), 0.999999) == 8  # the top value is reachable
    assert tune.quantile(IntDistribution(1, 3), 0.999) == 3


def test_after_the_random_start_tpe_proposes():
    space = {"lr": SHARED_LR_RANGE}
    study = optuna.create_study(sampler=tune.CommonRandomSampler("b", startup_trials=2, seed=1), direction="maximize")
    for i in range(4):
        trial = study.ask(fixed_distributions=space)
        study.tell(trial, float(i))
    common = [tune.quantile(SHARED_LR_RANGE, tune.common_uniform("b", "lr", i)) for i in range(4)]
    params = [t.params["lr"] for t in study.trials]
    assert params[:2] == common[:2] and params[2:] != common[2:]


def test_grid_trials_of_every_method_of_a_block_share_their_lr(tmp_path, data_dir):
    profile = load_profile(str(write_profile(tmp_path, methods=["std", "mvcr"], trials=3, seeds=[1])))
    out = tmp_path / "out"
    grid.run_grid(profile, out, data_dir=data_dir, track=False, progress=False)
    cells = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in out.glob("cells/*/*/*.json")}
    lrs = {m: [t["params"]["lr"] for t in sorted(c["trials"], key=lambda t: t["number"])] for m, c in cells.items()}
    assert lrs["std"] == lrs["mvcr"] and len(set(lrs["std"])) == 3
    assert cells["std"]["block_key"] == cells["mvcr"]["block_key"] != cells["std"]["cell_key"]


# ---- tie-break ----------------------------------------------------------------------------------------------------
def test_ties_go_to_the_higher_mean_dev_score_then_the_earlier_trial():
    study = optuna.create_study(direction="maximize")
    space = {"lr": SHARED_LR_RANGE}
    for value, mean in ((0.75, 0.5), (0.75, 0.7), (0.75, 0.7), (0.5, 0.9)):
        trial = study.ask(fixed_distributions=space)
        trial.set_user_attr(tune.DEV_MEAN_ATTR, mean)
        study.tell(trial, value)
    assert tune.summary(study)["best_trial"] == 1


# ---- equal evaluation schedule ------------------------------------------------------------------------------------
def test_eval_points_spread_over_the_main_phase():
    assert eval_points(12, 0, 6) == [2, 4, 6, 8, 10, 12]  # STD: epoch ends of 6 epochs of 2 steps
    assert eval_points(24, 0, 6) == [4, 8, 12, 16, 20, 24]  # STD++: twice as long, the same number of looks
    assert eval_points(14, 2, 6) == [4, 6, 8, 10, 12, 14]  # MVCR: one AE-only epoch, then STD's schedule
    assert eval_points(3, 0, 6) == [1, 2, 3]  # fewer steps than evaluations: every step once


@pytest.mark.parametrize("name", [n for n in METHODS.names() if not n.startswith("_")])
def test_every_method_gets_the_same_number_of_dev_evaluations(name, tiny_config):
    record = api.run(tiny_config(method=name, epochs=3, train_size=16, dev_size=8, max_test_examples=8,
                                 write_record=False))
    curve = record["train_info"]["dev_curve"]
    if record["run_info"]["status"] != "diverged":
        assert len(curve) == 3, (name, curve)
    steps = record["train_info"]["eval_steps"]  # evenly spaced, ending with the run
    assert len(steps) == 3 and all(b - a == steps[1] - steps[0] for a, b in zip(steps, steps[1:], strict=False))
    assert steps[-1] == record["train_info"]["steps_per_epoch"] * len(record["train_info"]["epoch_seconds"]) or \
        record["run_info"]["status"] == "diverged"


# ---- MVCR phase 2 -------------------------------------------------------------------------------------------------
def _lr_trace(method_cls: type[Method], tiny_config, **params) -> tuple[list[float], Method]:
    """The main optimiser's LR at each step of a run (read when each step has been taken)."""
    seen: list[float] = []
    holder: dict[str, Method] = {}

    class Traced(method_cls):  # type: ignore[misc, valid-type]
        name = f"_traced_{method_cls.name}"

        def prepare(self, ctx):
            super().prepare(ctx)
            holder["m"] = self
            step = ctx.model.register_forward_pre_hook(lambda *_: seen.append(ctx.optimizer.param_groups[0]["lr"])
                                                       if ctx.model.training and ctx.optimizer else None)
            self._trace_hook = step

    register_method(Traced)
    try:
        api.run(tiny_config(method=Traced.name, method_params=params, epochs=3, train_size=16, dev_size=8,
                            max_test_examples=8, write_record=False))
    finally:
        METHODS.unregister(Traced.name)
    return seen, holder["m"]


def test_mvcr_phase_two_restarts_the_schedule_with_its_own_warmup(tiny_config):
    mvcr_lr, mvcr = _lr_trace(METHODS.get("mvcr"), tiny_config)
    std_lr, _ = _lr_trace(METHODS.get("std"), tiny_config)
    start = mvcr.warmup * (len(mvcr_lr) // (3 + mvcr.warmup))
    assert start > 0 and mvcr_lr[start] == 0.0  # the first phase-2 step is at the start of a warm-up
    assert mvcr_lr[start:] == pytest.approx(std_lr)  # then exactly STD's schedule over its 3 epochs


# ---- failure on the clean test set --------------------------------------------------------------------------------
def test_failure_is_judged_on_the_clean_test_set(tiny_config):
    record = api.run(tiny_config(noise_rate=0.4, write_record=False))
    info, test = record["train_info"], record["metrics"]["test"]
    assert isinstance(info["majority_test"], float)
    assert record["run_info"]["status"] == ("failed" if test["primary"] <= info["majority_test"] else "ok")
    assert record["predictions"]["ref"] and len(record["predictions"]["ref"]) == len(record["predictions"]["pred"])


class NaNFromTheStart(Method):
    name = "_nan_from_start"

    def loss(self, model, batch, outputs):
        return {"boom": outputs.logits.sum() * math.nan}


def test_a_run_diverged_before_any_evaluation_carries_the_majority_score_for_the_leaderboard(tiny_config):
    register_method(NaNFromTheStart)
    try:
        record = api.run(tiny_config(method=NaNFromTheStart.name, write_record=False))
    finally:
        METHODS.unregister(NaNFromTheStart.name)
    assert record["run_info"]["status"] == "diverged" and record["metrics"]["test"] is None
    assert isinstance(record["train_info"]["majority_test"], float)


def test_grid_final_records_of_a_diverging_method_are_written(tmp_path, data_dir):
    register_method(NaNFromTheStart)
    try:
        profile = load_profile(str(write_profile(tmp_path, methods=["std", NaNFromTheStart.name], seeds=[1])))
        grid.run_grid(profile, tmp_path / "out", data_dir=data_dir, track=False, progress=False)
    finally:
        METHODS.unregister(NaNFromTheStart.name)
    statuses = {r["run_info"]["method"]: r["run_info"]["status"] for r in records_of(tmp_path / "out")}
    assert statuses[NaNFromTheStart.name] == "diverged"  # recorded, so the leaderboard counts it as a failure


# ---- exceptions to the equal protocol are stated --------------------------------------------------------------------
def test_extra_phases_are_stated_in_plan_record_and_leaderboard(tiny_config, tmp_path):
    from regbench.harness.grid.plan import phase_notes
    from regbench.harness.grid.profiles import parse_profile
    from regbench.harness.io.record_model import parse_record
    from regbench.harness.leaderboard.loading import _phases

    profile = parse_profile({"model": "tiny-random-bert", "tasks": ["sst2"], "sizes": ["n16"], "noise": [0.0],
                             "seeds": [1], "methods": ["std", "std++", "lp-ft", "mvcr"], "trials": 1, "epochs": 3},
                            "phases")
    notes = "\n".join(phase_notes(profile))
    assert "std++: trains 2x the epochs (6)" in notes and "mvcr: 1 AE-only warm-up epoch" in notes
    assert "lp-ft: linear probe" in notes and "std:" not in notes
    record = api.run(tiny_config(method="mvcr", epochs=3, write_record=False))
    assert record["train_info"]["phases"].startswith("1 AE-only warm-up epoch(s) before the 3 main epochs")
    del record["train_info"]["phases"]  # an older record: the leaderboard asks the method instead
    assert _phases(parse_record(record)).startswith("1 AE-only warm-up epoch(s)")

"""The pruning measurement of ``benchmarks/perf/cell.py``: replay on recorded curves, and resuming its studies."""

from __future__ import annotations

import argparse

import pytest

from regbench.benchmarks.perf import cell, replay


def _trial(number: int, curve: list[float], steps_per_epoch: int = 4) -> dict:
    return {"number": number, "params": {"lr": 1e-4 * (number + 1)}, "value": max(curve),
            "intermediate": {str(epoch): value for epoch, value in enumerate(curve, start=1)},
            "steps": steps_per_epoch * len(curve)}


# Three good trials first (the median's startup), then a hopeless one and a slow starter that ends best.
STUDY = [_trial(0, [0.6, 0.7, 0.7]), _trial(1, [0.6, 0.7, 0.8]), _trial(2, [0.7, 0.7, 0.75]),
         _trial(3, [0.5, 0.5, 0.5]), _trial(4, [0.5, 0.6, 0.9])]


def test_replay_without_a_pruner_trains_everything_and_keeps_the_best():
    replayed = replay.replay([STUDY], {"type": "none"})
    assert replayed["steps"] == 5 * 12
    assert replayed["pruned"] == 0
    assert replayed["best_dev"] == [0.9]


def test_replayed_median_pruner_stops_below_median_trials_at_the_epoch_it_reports():
    replayed = replay.replay([STUDY], {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0})
    # Trials 3 and 4 are below the median of the completed trials at epoch 1 (0.6): each stops after one epoch,
    # and the slow starter's 0.9 is lost — the cost the pruning report measures.
    assert replayed["pruned"] == 2
    assert replayed["steps"] == 3 * 12 + 2 * 4
    assert replayed["best_dev"] == [0.8]
    assert [trial["number"] for trial in replayed["chosen"]] == [1]


def _args(tmp_path, seeds: int, size: str = "n256", trials: int = 5) -> argparse.Namespace:
    return argparse.Namespace(pruning_seeds=seeds, pruning_trials=trials, pruning_size=size, pruning_method="std",
                              out=str(tmp_path / "report.md"), curves=tmp_path / "report-unpruned-studies.json")


def test_unpruned_studies_resume_from_the_recorded_ones(tmp_path, monkeypatch):
    ran = []

    def fake_cell(out, trials, pruner, seeds, sampler, size, method):
        ran.append((sampler, size, pruner, method))
        return {"trials": list(reversed(STUDY))}

    monkeypatch.setattr(cell, "regbench_cell", fake_cell)
    args = _args(tmp_path, seeds=3)
    replay.save_curves(args.curves, [STUDY, STUDY], "n256", "std")
    recorded = replay.load_curves(args.curves, "n256", 5, "std")
    assert recorded == [STUDY, STUDY]

    studies = cell.unpruned_studies(tmp_path, args, recorded)
    assert ran == [("sampler3", "n256", "none", "std")]  # seeds 1 and 2 are not trained again
    assert studies == [STUDY, STUDY, STUDY]  # trials in the order they ran
    assert replay.load_curves(args.curves, "n256", 5, "std") == studies  # saved as soon as the study finished


def test_recorded_studies_of_another_cell_are_one_error_line_and_stay_on_disk(tmp_path):
    curves = tmp_path / "report-unpruned-studies.json"
    replay.save_curves(curves, [STUDY], "n256", "l2_sp")
    before = curves.read_text()
    message = "holds l2_sp n256 studies of 5 trials, not l2_sp k16 of 5: pass another --out"
    with pytest.raises(SystemExit, match=message):
        replay.load_curves(curves, "k16", 5, "l2_sp")
    with pytest.raises(SystemExit, match="not l2_sp n256 of 16"):
        replay.load_curves(curves, "n256", 16, "l2_sp")
    with pytest.raises(SystemExit, match="not std n256 of 5"):
        replay.load_curves(curves, "n256", 5, "std")
    assert curves.read_text() == before


def test_each_chosen_configuration_is_trained_once_and_scored_on_test(tmp_path, monkeypatch):
    trained = []

    def fake_cell(out, trials, pruner, seeds, configurations, size, method):
        (params,) = configurations
        number = round(params["lr"] / 1e-4) - 1
        trained.append(number)
        return {"finals": [{"dev_primary": STUDY[number]["value"], "test_primary": 0.5 + number / 100}]}

    monkeypatch.setattr(cell, "regbench_cell", fake_cell)
    tests = cell.chosen_test_scores(tmp_path, [STUDY, STUDY], _args(tmp_path, seeds=2))
    assert tests["none"] == [0.54, 0.54]  # the slow starter, chosen without pruning
    assert tests["median, from epoch 1"] == [0.51, 0.51]  # pruned away: the runner-up is what the grid keeps
    # A configuration chosen by several settings is trained once per study (the two studies are scored apart).
    assert sorted(trained) == sorted(2 * sorted(set(trained)))
    assert set(tests) == {"none", *replay.REPLAYED}

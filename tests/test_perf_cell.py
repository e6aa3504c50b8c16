"""The pruning measurement of ``benchmarks/perf/cell.py``: replay on recorded curves, and resuming its studies."""

from __future__ import annotations

import argparse

import pytest

from regbench.benchmarks.perf import cell


def _trial(number: int, curve: list[float], steps_per_epoch: int = 4) -> dict:
    return {"number": number, "params": {"lr": 1e-4 * (number + 1)}, "value": max(curve),
            "intermediate": {str(epoch): value for epoch, value in enumerate(curve, start=1)},
            "steps": steps_per_epoch * len(curve)}


# Three good trials first (the median's startup), then a hopeless one and a slow starter that ends best.
STUDY = [_trial(0, [0.6, 0.7, 0.7]), _trial(1, [0.6, 0.7, 0.8]), _trial(2, [0.7, 0.7, 0.8]),
         _trial(3, [0.5, 0.5, 0.5]), _trial(4, [0.5, 0.6, 0.9])]


def test_replay_without_a_pruner_trains_everything_and_keeps_the_best():
    replayed = cell.replay([STUDY], {"type": "none"})
    assert replayed["steps"] == 5 * 12
    assert replayed["pruned"] == 0
    assert replayed["best_dev"] == [0.9]


def test_replayed_median_pruner_stops_below_median_trials_at_the_epoch_it_reports():
    replayed = cell.replay([STUDY], {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 0})
    # Trials 3 and 4 are below the median of the completed trials at epoch 1 (0.6): each stops after one epoch,
    # and the slow starter's 0.9 is lost — the cost the pruning report measures.
    assert replayed["pruned"] == 2
    assert replayed["steps"] == 3 * 12 + 2 * 4
    assert replayed["best_dev"] == [0.8]


def _args(tmp_path, seeds: int, size: str = "n256", trials: int = 5) -> argparse.Namespace:
    return argparse.Namespace(pruning_seeds=seeds, pruning_trials=trials, pruning_size=size,
                              out=str(tmp_path / "report.md"))


def test_unpruned_studies_resume_from_the_recorded_ones(tmp_path, monkeypatch):
    ran = []

    def fake_cell(out, trials, pruner, seeds, sampler, size):
        ran.append((sampler, size, pruner))
        return {"trials": list(reversed(STUDY))}

    monkeypatch.setattr(cell, "regbench_cell", fake_cell)
    report = tmp_path / "report.md"
    cell.save_curves(report, [STUDY, STUDY], "n256")
    recorded = cell.load_curves(report, "n256", 5)
    assert recorded == [STUDY, STUDY]

    studies = cell.unpruned_studies(tmp_path, report, _args(tmp_path, seeds=3), recorded)
    assert ran == [("sampler3", "n256", "none")]  # seeds 1 and 2 are not trained again
    assert studies == [STUDY, STUDY, STUDY]  # trials in the order they ran
    assert cell.load_curves(report, "n256", 5) == studies  # saved as soon as the study finished


def test_recorded_studies_of_another_cell_are_one_error_line_and_stay_on_disk(tmp_path):
    report = tmp_path / "report.md"
    cell.save_curves(report, [STUDY], "n256")
    before = cell._curves_path(report).read_text()
    with pytest.raises(SystemExit, match="holds n256 studies of 5 trials, not k16 of 5: pass another --out"):
        cell.load_curves(report, "k16", 5)
    with pytest.raises(SystemExit, match="not n256 of 16"):
        cell.load_curves(report, "n256", 16)
    assert cell._curves_path(report).read_text() == before

"""Leaderboard: statistics with known answers, aggregation of synthetic records, bad input, byte-identical output."""

from __future__ import annotations

import gzip
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_synth import make_record, write, write_cell
from scipy import stats as sps

from regbench.harness.cli import main
from regbench.harness.core.errors import RegbenchError
from regbench.harness.io import records
from regbench.harness.leaderboard import aggregate, build_leaderboard, crossdataset, plots, stats
from regbench.harness.leaderboard.loading import load_runs
from regbench.harness.leaderboard.tables import main_table

SEEDS = [1, 2, 3, 4, 5]
STD = [0.70, 0.72, 0.74, 0.76, 0.78]
JITTER = [0.004, -0.003, 0.002, -0.004, 0.001]  # small, so "better" is better by a consistent margin
NOISE = [0.02, -0.02, 0.01, -0.01, 0.0]  # differences that average to zero


# ---- stats -------------------------------------------------------------------------------------------------------
def test_mean_std_and_t_interval_known_values() -> None:
    mean, std = stats.mean_std(STD)
    assert mean == pytest.approx(0.74) and std == pytest.approx(math.sqrt(0.001))
    half = 2.7764451051977987 * math.sqrt(0.001) / math.sqrt(5)  # t(0.975, 4) · s / √n
    assert stats.t_interval(STD) == pytest.approx((0.74 - half, 0.74 + half))
    assert stats.t_interval([0.5] * 4) == (0.5, 0.5)
    assert all(math.isnan(v) for v in stats.t_interval([0.7]))


def test_paired_tests_flag_a_consistent_margin_and_not_noise() -> None:
    better = [s + 0.03 + j for s, j in zip(STD, JITTER)]
    noisy = [s + n for s, n in zip(STD, NOISE)]
    assert stats.paired_t(better, STD) < 1e-4
    assert stats.paired_t(noisy, STD) > 0.5
    assert stats.sign_flip(better, STD) == (0.0625, 0.0625)  # 5 seeds: the floor is 2 / 2**5
    assert stats.sign_flip(noisy, STD)[0] == 1.0
    assert stats.sign_flip([2.0, 1.0], [0.0, 0.0]) == (0.5, 0.5)  # sums ±2±1: |3| twice of four
    assert math.isnan(stats.paired_t([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]))  # the same difference: the exact test decides
    assert math.isnan(stats.paired_t(STD, STD)) and stats.sign_flip(STD, STD) == (1.0, 1.0)
    assert stats.wilcoxon(STD, STD) == 1.0


def test_holm_known_values_and_nan() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.01, math.nan, 0.02])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_ranks_ties_friedman_and_critical_difference() -> None:
    assert stats.ranks([0.9, 0.8, 0.8, 0.7]).tolist() == [1.0, 2.5, 2.5, 4.0]
    ordered = np.array([[0.9, 0.8, 0.7]] * 6) + np.arange(6)[:, None] * 0.01
    perfect = crossdataset.friedman(ordered)
    assert perfect["friedman_p"] < 0.01 and math.isinf(perfect["iman_davenport_f"])  # identical rankings
    assert math.isnan(perfect["iman_davenport_p"])  # never p = 0: the χ² p stands
    assert math.isnan(crossdataset.friedman(ordered[:, :2])["friedman_p"])  # two methods: no Friedman test
    mixed = np.array([[3, 2, 1], [3, 1, 2], [2, 3, 1], [3, 2, 1]], dtype=float)
    chi2 = 12 * 4 / (3 * 4) * (sum(r**2 for r in (1.25, 2.0, 2.75)) - 3 * 16 / 4)  # Demšar (2006), eq. for χ²_F
    found = crossdataset.friedman(mixed)
    f = 3 * chi2 / (4 * 2 - chi2)
    assert found["chi2"] == pytest.approx(chi2) and found["iman_davenport_f"] == pytest.approx(f)
    assert found["iman_davenport_p"] == pytest.approx(sps.f.sf(f, 2, 6))
    assert [round(crossdataset.nemenyi_cd(k, 1) / math.sqrt(k * (k + 1) / 6), 3) for k in (2, 3, 4, 5)] == \
        [1.960, 2.344, 2.569, 2.728]  # Demšar (2006), Table 5(a)
    assert stats.failure_rate(["ok", "failed", "diverged", "ok"]) == 0.5


def test_wilcoxon_pairs_task_means_and_holm_vs_control() -> None:
    import pandas as pd

    means = pd.DataFrame({"std": [0.7, 0.6, 0.8, 0.5, 0.65, 0.75], "m": [0.72, 0.63, 0.85, 0.51, 0.7, 0.8],
                          "w": [0.6, 0.5, 0.7, 0.4, 0.55, 0.65]})
    found = crossdataset.wilcoxon_task_means(means, "std")
    assert found["m"] == (6, pytest.approx(sps.wilcoxon(means["m"] - means["std"]).pvalue))  # one pair per task
    control = crossdataset.holm_vs_control(means, "std")
    ranks = crossdataset.average_ranks(means)
    z = (ranks - ranks["std"]) / math.sqrt(3 * 4 / (6 * 6))
    assert list(control.values()) == pytest.approx(stats.holm([2 * sps.norm.sf(abs(z[m])) for m in ("m", "w")]))


# ---- aggregation of synthetic records ------------------------------------------------------------------------------
def _write_grid(root: Path, tasks: tuple[str, ...] = ("sst2", "rte", "trec"), noise: tuple[float, ...] = (0.0,),
                gz: bool = False, seeds: int = len(SEEDS)) -> None:
    for task in tasks:
        for rate in noise:
            for i, seed in enumerate(range(1, seeds + 1)):
                base = STD[i % 5] + 0.001 * (i // 5) - rate  # seeds 6–10 repeat 1–5, a little higher
                write(root, make_record(task, "std", seed, base, noise=rate), gz)
                write(root, make_record(task, "better", seed, base + 0.03 + JITTER[i % 5], noise=rate), gz)
                write(root, make_record(task, "noisy", seed, base + NOISE[i % 5] * (-1) ** (i // 5), noise=rate), gz)
                status = "failed" if seed == 1 else "ok"
                if not (task == "rte" and seed == 5):  # one missing seed: an incomplete cell
                    write(root, make_record(task, "flaky", seed, base - 0.01, status=status, noise=rate), gz)


@pytest.fixture
def records_dir(tmp_path: Path) -> Path:
    _write_grid(tmp_path / "records")
    return tmp_path / "records"


def test_cell_stats_significance_failures_and_holm(records_dir: Path) -> None:
    runs = load_runs(records_dir).runs
    cells = aggregate.add_ranks(aggregate.cell_stats(runs)).set_index(["task", "method"])
    std = cells.loc["sst2", "std"]
    assert std["mean"] == pytest.approx(0.74) and std["std"] == pytest.approx(math.sqrt(0.001))
    assert (std["ci_low"], std["ci_high"]) == stats.t_interval(STD)
    for task in ("sst2", "rte", "trec"):  # 5 seeds: the exact floor 0.0625 forbids any mark, the t-test would not
        better = cells.loc[task, "better"]
        assert better["p_signflip"] == 0.0625 and better["sig"] == 0 and better["p_t"] < 1e-3
        assert cells.loc[task, "noisy"]["sig"] == 0
        assert better["rank"] == 1.0
    compared = cells[cells.index.get_level_values("method") != "std"]
    assert compared["p_signflip_holm"].tolist() == pytest.approx(stats.holm(compared["p_signflip"].tolist()))
    assert (compared["holm_family"] == len(compared)).all()  # one family: the whole table
    flaky = cells.loc["sst2", "flaky"]
    assert flaky["failure_rate"] == 0.2 and flaky["mean_ok"] == pytest.approx(0.75 - 0.01)  # seeds 2-5 only
    assert not cells.loc["rte", "flaky"]["complete"] and cells.loc["rte", "flaky"]["seeds"] == 4
    summary = aggregate.overall(runs, aggregate.add_ranks(aggregate.cell_stats(runs))).set_index("method")
    assert summary.loc["better", "task_pairs"] == 3 and summary.loc["better", "wilcoxon_p"] == 0.25  # 3 task means
    assert summary.loc["better", "overall_sig"] == 0 and summary.loc["better", "aso"] < 0.5
    assert summary.loc["noisy", "overall_sig"] == 0
    assert math.isnan(summary.loc["flaky", "average"])  # incomplete: no average over tasks
    assert summary.loc["flaky", "failure_rate"] == pytest.approx(3 / 14)


def test_enough_seeds_and_tasks_give_marks(tmp_path: Path) -> None:
    """10 seeds: the exact floor 2/2^10 times the family of 9 is below 0.05, so consistent margins are marked."""
    _write_grid(tmp_path, seeds=10)
    cells = aggregate.cell_stats(load_runs(tmp_path).runs).set_index(["task", "method"])
    assert all(cells.loc[t, "better"]["sig"] == 1 and cells.loc[t, "noisy"]["sig"] == 0 for t in ("sst2", "trec"))


def test_rank_averaging_with_ties(tmp_path: Path) -> None:
    for task, (a, b, c) in {"sst2": (0.8, 0.8, 0.6), "rte": (0.9, 0.7, 0.8)}.items():
        for seed in (1, 2):
            for method, score in (("std", a), ("m1", b), ("m2", c)):
                write(tmp_path, make_record(task, method, seed, score))
    runs = load_runs(tmp_path).runs
    summary = aggregate.overall(runs, aggregate.add_ranks(aggregate.cell_stats(runs))).set_index("method")
    assert summary["average_rank"].to_dict() == {"std": 1.25, "m1": 2.25, "m2": 2.5}


def test_incomplete_cell_is_shown_not_bolded_and_not_averaged(records_dir: Path) -> None:
    write(records_dir, make_record("rte", "flaky", 1, 0.99))  # now flaky is "best" on rte, with 4 of 5 seeds
    runs = load_runs(records_dir).runs
    cells = aggregate.add_ranks(aggregate.cell_stats(runs))
    table = main_table(cells, aggregate.overall(runs, cells), "k16", "clean")
    row = next(r for r in table.rows if r[0].text == "flaky")
    rte = table.columns.index("rte")
    assert row[rte].text.endswith("[4/5]") and not row[rte].bold
    assert row[table.columns.index("Average")].text == "incomplete"


def test_the_newest_record_of_a_seed_wins_even_under_another_run_key(tmp_path: Path) -> None:
    """A cell tuned again from scratch may choose another configuration: its new records have another run key, which
    can sort before the old one; the newer record is the one kept."""
    for run_id, stamp, score in (("zzz-old-config", "20260101T000000000000Z", 0.6),
                                 ("aaa-new-config", "20260301T000000000000Z", 0.8),
                                 ("mmm-middle", "20260201T000000000000Z", 0.7)):
        record = make_record("sst2", "std", 1, score)
        record["run_info"]["run_id"] = run_id
        records.write_record(tmp_path / "sst2" / "std" / f"{run_id}-{stamp}.json", record)
    loaded = load_runs(tmp_path)
    assert loaded.runs["primary"].tolist() == [0.8] and loaded.replaced == 2
    assert "_written" not in loaded.runs.columns


# ---- bad input ---------------------------------------------------------------------------------------------------
def test_bad_records_are_named_and_skipped(records_dir: Path) -> None:
    (records_dir / "corrupt.json").write_text("{not json")
    (records_dir / "truncated.json.gz").write_bytes(gzip.compress(b'{"run_info": ')[:-4])
    invalid = make_record("sst2", "std", 9, 0.7)
    del invalid["run_info"]["size"]
    write(records_dir / "x", invalid)
    wrong = make_record("sst2", "std", 8, 0.7)
    wrong["run_info"]["status"] = "exploded"
    write(records_dir / "y", wrong)
    loaded = load_runs(records_dir)
    assert len(loaded.skipped) == 4 and len(loaded.runs) == 3 * 3 * 5 + 3 * 5 - 1
    assert all(line.startswith("skipped ") and "\n" not in line for line in loaded.skipped)
    assert any("corrupt.json" in s and "does not parse" in s for s in loaded.skipped)
    assert any("run_info.size" in s for s in loaded.skipped) and any("run_info.status" in s for s in loaded.skipped)


def test_empty_or_missing_records_directory_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RegbenchError, match="no usable final-run records"):
        load_runs(tmp_path / "empty")
    assert main(["leaderboard", "--records", str(tmp_path / "nowhere"), "--no-track"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- the whole build -------------------------------------------------------------------------------------------------
def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_is_byte_identical_and_reads_gz(tmp_path: Path) -> None:
    records, cells = tmp_path / "records", tmp_path / "cells"
    _write_grid(records, tasks=("sst2", "trec"), noise=(0.0, 0.2), seeds=10)
    write_cell(cells, "sst2", "better", [({"lr": 1e-5 * (i + 1), "alpha": 0.1 * (i % 4)}, 0.6 + 0.01 * (i % 7))
                                         for i in range(10)])
    (records / "corrupt.json").write_text("{")
    out = tmp_path / "out"
    assert main(["leaderboard", "--records", str(records), "--out", str(out), "--no-track"]) == 0
    first = _snapshot(out)
    expected = {"leaderboard.md", "leaderboard.tex", "leaderboard.csv", "leaderboard_overall.csv", "index.html",
                "plots/bars-k16-clean.png", "plots/bars-k16-clean.svg", "plots/noise-robustness-k16.svg",
                "plots/rank-vs-cost.png", "plots/ranks-k16-symmetric-0-2.svg", "plots/sensitivity-better.svg"}
    assert expected <= set(first)
    markdown = first["leaderboard.md"].decode()
    assert "1 skipped" in markdown and f"--records {records}" in markdown and "▲" in markdown
    assert "alpha" in markdown and "Robustness to label noise" in markdown and "family = " in markdown
    assert "alpha 0." in markdown  # fANOVA importances: the cell has 10 finished trials
    html = first["index.html"].decode()
    assert "<script src" not in html and "<link" not in html and "data:image/svg+xml;base64," in html
    assert b"\\toprule" in first["leaderboard.tex"] and b"\\bottomrule" in first["leaderboard.tex"]
    for path in records.rglob("*.json"):  # the same records as .json.gz give the same bytes
        if path.name != "corrupt.json":
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
            path.unlink()
    assert main(["leaderboard", "--records", str(records), "--out", str(out), "--no-track"]) == 0
    assert _snapshot(out) == first


def test_build_logs_artifacts_to_mlflow(tmp_path: Path) -> None:
    _write_grid(tmp_path / "records", tasks=("sst2",))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = build_leaderboard(tmp_path / "records", tmp_path / "out", "synth", tracking_uri=uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "regbench-synth"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"leaderboard.md", "index.html", "leaderboard.csv", "leaderboard.tex", "plots"} <= names
    again = build_leaderboard(tmp_path / "records", tmp_path / "out", "synth", tracking_uri=uri)
    assert again["mlflow_run_id"] == summary["mlflow_run_id"]  # regeneration reattaches the same run
    shutil.rmtree(tmp_path / "out")


def test_importance_is_empty_when_every_trial_scored_the_same():
    from regbench.harness.leaderboard.importance import importances

    trials = [{"state": "COMPLETE", "value": 0.5, "params": {"lr": 1e-5 * i}} for i in range(1, 13)]
    assert importances(trials) == {}


def test_tasks_tested_on_a_held_out_training_sample_are_marked():
    import pandas as pd

    from regbench.harness.leaderboard.tables import _marks

    block = pd.DataFrame({"task": ["mnli", "sst2", "wnli"], "exclude_from_average": [False, False, True],
                          "heldout_test": [True, False, False]})
    assert [_marks(block, t) for t in ("mnli", "sst2", "wnli")] == ["‡", "", "†"]


def test_plots_of_many_methods_keep_their_layout(tmp_path: Path) -> None:
    """18 methods (the registry's size) on 2 tasks: the legend and the bar labels must not squeeze the panels to
    nothing (matplotlib then warns that constrained layout was not applied and draws the legend over the data)."""
    records = tmp_path / "records"
    for m in range(18):
        for task in ("sst2", "trec"):
            for i, seed in enumerate(SEEDS):
                for rate in (0.0, 0.2):
                    write(records, make_record(task, "std" if m == 0 else f"regularizer-{m}", seed,
                                               STD[i] - rate + m / 100, noise=rate))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["leaderboard", "--records", str(records), "--out", str(tmp_path / "out"), "--no-track"]) == 0
    assert not [str(w.message) for w in caught if "constrained_layout" in str(w.message)]


def test_the_published_leaderboard_is_byte_identical_whatever_the_string_hash_seed(tmp_path):
    """The critical-difference diagram once followed Python's per-process string hash (a set of tied methods):
    two processes drew the same records differently. Two hash seeds, the committed quick records, same bytes."""
    import os
    import subprocess
    import sys

    records = Path(__file__).resolve().parents[1] / "results" / "quick" / "records"
    outputs = []
    out = tmp_path / "lb"  # one path: the "Regenerate" line quotes it
    for seed in ("1", "2"):
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([str(Path(sys.executable).parent / "regbench"), "leaderboard", "--records", str(records),
                        "--out", str(out), "--no-track"], check=True, env=env, capture_output=True)
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0].keys() == outputs[1].keys() and outputs[0] == outputs[1]


def test_curves_draw_only_tasks_measured_at_two_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-point "curve" says nothing the bars do not: trec (clean and 0.4) gets a panel, cr (clean only) none, and
    the k16 figure, where no task has two noise levels, is not drawn at all."""
    rows = [("trec", "n256", "clean"), ("trec", "n256", "symmetric 0.4"), ("cr", "n256", "clean"),
            ("trec", "k16", "clean")]
    cells = pd.DataFrame([{"task": task, "family": "sentence_cls", "method": method, "size": size, "noise": noise,
                           "mean": 0.8 - 0.1 * (noise != "clean")}
                          for task, size, noise in rows for method in ("std", "repina_i")])
    panels: list[int] = []
    grid = plots._grid
    monkeypatch.setattr(plots, "_grid", lambda count, *a, **k: panels.append(count) or grid(count, *a, **k))
    written = plots.noise_curves(cells, tmp_path)
    assert [Path(p).stem for p in written] == ["noise-robustness-n256"] and panels == [1]
    assert not list(tmp_path.glob("noise-robustness-k16*"))
    assert plots.fewshot_curves(cells[cells["task"] == "cr"], tmp_path) == []

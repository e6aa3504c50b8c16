"""The pooled comparison with STD (every (task, seed) pair of a block in one test), its plots, and the exact
sign-flip test beyond 16 pairs. Synthetic records with hand-checkable answers (leaderboard_synth, as in
test_leaderboard.py); each test names what it would catch."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from leaderboard_synth import make_record, write

from regbench.harness.leaderboard import build_leaderboard, intervals, plots, pooled, stats
from regbench.harness.leaderboard.loading import load_runs
from regbench.harness.leaderboard.tables import POOLED_COLUMNS, pooled_table


def _grid(root: Path, margins: dict[str, dict[str, list[float]]], **record: object) -> None:
    """``margins[method][task]``: the method's score − STD's, per seed (seeds 1, 2, …); STD at 0.70 + 0.01·seed."""
    for method, by_task in margins.items():
        for task, deltas in by_task.items():
            for seed, delta in enumerate(deltas, start=1):
                base = 0.70 + 0.01 * seed
                write(root, make_record(task, "std", seed, base, **record))
                write(root, make_record(task, method, seed, base + delta, **record))


def _pooled(root: Path):
    return pooled.pooled(load_runs(root).runs).set_index("method")


def _column(table, name: str) -> list[str]:
    index = table.columns.index(name)
    return [row[index].text for row in table.rows]


def test_six_positive_pairs_give_the_exact_p_two_over_64_and_a_mark(tmp_path: Path) -> None:
    """2 tasks × 3 seeds, all better: p = 2/2^6 = 0.03125 exactly (not the t-test's); alone in its family: ▲."""
    _grid(tmp_path, {"m": {"sst2": [0.02, 0.03, 0.025], "trec": [0.01, 0.04, 0.02]}})
    row = _pooled(tmp_path).loc["m"]
    assert (row["tasks"], row["pairs"], row["seeds"]) == (2, 6, 3)
    assert row["p_signflip"] == pytest.approx(2 / 64) and row["signflip_floor"] == pytest.approx(2 / 64)
    assert row["p_signflip_holm"] == pytest.approx(2 / 64) and row["holm_family"] == 1 and row["sig"] == 1
    assert row["diff"] == pytest.approx(0.145 / 6)
    assert (row["wins"], row["losses"], row["ties"]) == (2, 0, 0)
    table = pooled_table(pooled.pooled(load_runs(tmp_path).runs), "k16", "clean")
    assert table.columns == POOLED_COLUMNS and _column(table, "Verdict") == ["better"]
    assert table.rows[0][POOLED_COLUMNS.index("sign-flip p (Holm)")].mark == 1


def test_holm_runs_over_the_methods_of_the_block(tmp_path: Path) -> None:
    """a: 6 of 6 pairs better (p = 2/64); b: 5 better, 1 worse by the same amount (|Σ±1| ≥ 4 in 14 of 64 sign
    patterns). Holm: a → 2 × 2/64 = 0.0625 (no mark, though significant alone), b → max(0.0625, 14/64)."""
    _grid(tmp_path, {"a": {"sst2": [0.01] * 3, "trec": [0.01] * 3},
                     "b": {"sst2": [0.01, 0.01, -0.01], "trec": [0.01] * 3}})
    found = _pooled(tmp_path)
    assert found.loc["a", "p_signflip"] == pytest.approx(2 / 64)
    assert found.loc["b", "p_signflip"] == pytest.approx(14 / 64)
    assert found.loc["a", "p_signflip_holm"] == pytest.approx(0.0625)
    assert found.loc["b", "p_signflip_holm"] == pytest.approx(14 / 64)
    assert (found["holm_family"] == 2).all() and (found["sig"] == 0).all()
    assert (found.loc["b", "wins"], found.loc["b", "losses"]) == (2, 0)  # sst2's mean Δ is still > 0


def test_no_mark_where_the_exact_floor_cannot_reach_alpha(tmp_path: Path) -> None:
    """1 task × 5 seeds, consistently better: the t-test says p < 0.001, the exact floor 2/2^5 = 0.0625 says no
    test can decide; no mark, the floor says why, the verdict is inconclusive at MDE ∞."""
    _grid(tmp_path, {"m": {"sst2": [0.030, 0.031, 0.029, 0.032, 0.030]}})
    frame = pooled.pooled(load_runs(tmp_path).runs)
    row = frame.iloc[0]
    assert row["p_t"] < 1e-3 and row["p_signflip"] == 0.0625 and row["sig"] == 0 and math.isinf(row["mde"])
    table = pooled_table(frame, "k16", "clean")
    assert _column(table, "floor") == ["0.0625: 5 pairs cannot reach p < 0.05"]
    assert _column(table, "Verdict") == ["inconclusive at MDE ∞"]
    assert all(row[POOLED_COLUMNS.index("sign-flip p (Holm)")].mark == 0 for row in table.rows)


def test_mde_is_infinite_when_holm_times_the_floor_reaches_alpha(tmp_path: Path) -> None:
    """Family of 2 at 6 pairs: 2 × 2/64 = 0.0625 ≥ 0.05, so the pooled MDE is ∞ (7 pairs would do: 2 × 2/128)."""
    _grid(tmp_path, {"a": {"sst2": [0.01, 0.02, 0.03], "trec": [0.02, 0.0, 0.01]},
                     "b": {"sst2": [-0.01, 0.02, 0.0], "trec": [0.03, -0.02, 0.01]}})
    frame = pooled.pooled(load_runs(tmp_path).runs)
    info = pooled.block_info(frame)
    assert info["family"] == 2 and info["pairs_for_mark"] == 7 and not info["mde_reachable"]
    text = pooled.mde_text(info)
    assert text.startswith("Pooled MDE: ∞ (6 pairs cannot reach p < 0.05 with the exact sign-flip test after Holm "
                           "over 2 methods: 2 × 2/2^6 = 0.0625")
    assert f"the paired t alone would need {100 * info['mde_t']:.1f} points" in text
    assert set(_column(pooled_table(frame, "k16", "clean"), "Verdict")) == {"inconclusive at MDE ∞"}


def test_finite_pooled_mde_is_the_noncentral_t_at_n_with_the_pooled_sd(tmp_path: Path) -> None:
    deltas = {"a": {"sst2": [0.02, -0.01, 0.0, 0.03, -0.03], "trec": [0.01, -0.02, 0.04, -0.01, 0.0],
                    "rte": [-0.02, 0.01, 0.02, -0.04, 0.01]},
              "b": {"sst2": [0.05, -0.03, 0.01, 0.0, -0.02], "trec": [-0.01, 0.02, -0.05, 0.03, 0.01],
                    "rte": [0.0, 0.02, -0.01, 0.01, -0.03]}}
    _grid(tmp_path, deltas)
    frame = pooled.pooled(load_runs(tmp_path).runs)
    info = pooled.block_info(frame)
    d = [np.concatenate([np.array(deltas[m][t]) for t in ("rte", "sst2", "trec")]) for m in ("a", "b")]
    sd = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in d) / (2 * 14))  # df-weighted over the 2 methods
    assert info["mde_n"] == 15 and info["pooled_sd"] == pytest.approx(sd, rel=1e-9) and info["mde_reachable"]
    assert pooled.mde_text(info).startswith(f"Pooled MDE: {100 * stats.mde(sd, 15):.1f} points (80% power")
    assert (frame["sig"] == 0).all()  # differences drawn around 0: neither method is marked
    assert _column(pooled_table(frame, "k16", "clean"), "Verdict") == \
        [f"inconclusive at MDE {100 * stats.mde(sd, 15):.1f}"] * 2


def test_wins_and_losses_show_what_the_pooled_mean_hides(tmp_path: Path) -> None:
    """+5 points on one task, −1 on two others: the pooled mean is +1, but the method loses on 2 of 3 tasks."""
    _grid(tmp_path, {"m": {"sst2": [0.05] * 3, "trec": [-0.01] * 3, "rte": [-0.01] * 3}})
    frame = pooled.pooled(load_runs(tmp_path).runs)
    assert frame.iloc[0]["diff"] == pytest.approx(0.01)
    assert _column(pooled_table(frame, "k16", "clean"), "Tasks W / L / T") == ["1 / 2 / 0"]


def test_tasks_excluded_from_averages_are_not_pooled(tmp_path: Path) -> None:
    _grid(tmp_path, {"m": {"sst2": [0.01] * 3, "wnli": [-0.2] * 3}})  # wnli.yaml: exclude_from_average
    row = _pooled(tmp_path).loc["m"]
    assert (row["tasks"], row["pairs"], row["diff"]) == (1, 3, pytest.approx(0.01))


def test_interval_resamples_within_tasks() -> None:
    """Constant differences within each task: a stratified bootstrap keeps each task's count, so every replicate
    is the pooled mean; resampling pairs across tasks would spread it between −1 and +2 points."""
    low, high = intervals.stratified_interval([[0.02] * 3, [-0.01] * 3])
    assert low == pytest.approx(0.005) and high == pytest.approx(0.005)
    spread = intervals.stratified_interval([[0.02, 0.0, 0.01], [-0.01, 0.03]])
    assert spread == intervals.stratified_interval([[0.02, 0.0, 0.01], [-0.01, 0.03]])  # fixed seed
    assert spread[0] < 0.01 < spread[1]
    assert all(math.isnan(v) for v in intervals.stratified_interval([]))


def test_exact_sign_flip_beyond_sixteen_pairs() -> None:
    """Meet in the middle: exact where the sign-pattern matrix is too big. 16 of 17 unit differences positive:
    |Σ±1| ≥ 15 for 1 + 17 + 17 + 1 = 36 of 2^17 patterns; 20 positive: the floor 2/2^20."""
    assert stats.sign_flip([1.0] * 16 + [-1.0], [0.0] * 17) == (36 / 2**17, 2 / 2**17)
    assert stats.sign_flip([0.5] * 20, [0.0] * 20) == (2 / 2**20, 2 / 2**20)
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 9, 12):  # agrees with brute-force enumeration where that is possible
        d = np.round(rng.normal(0.01, 0.03, n), 3) + 1e-4
        brute = np.abs(np.array(list(itertools.product((1, -1), repeat=n))) @ d) >= abs(d.sum()) - n * stats.ZERO
        assert stats._split_sign_flip(d) == pytest.approx(brute.mean(), abs=1e-15)
    assert stats.sign_flip_basis(40) == "exact" and stats.sign_flip_basis(41).startswith("Monte Carlo (65,536")


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_build_places_the_section_and_draws_failure_and_collapse_plots(tmp_path: Path) -> None:
    records = tmp_path / "records"
    collapse = {"cka": 0.9, "probe_rows": 64.0, "probe_transfer_delta": -0.01, "pretrained_effective_rank": 30.0}
    _grid(records, {"a": {"sst2": [0.01, 0.02, 0.0], "trec": [0.03, -0.01, 0.02]}}, collapse=collapse)
    write(records, make_record("sst2", "b", 1, 0.5, status="failed", collapse={**collapse, "cka": 0.5}))
    build_leaderboard(records, tmp_path / "out", "synth")
    first = _snapshot(tmp_path / "out")
    markdown = first["leaderboard.md"].decode()
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Main tables", "## Pooled comparison vs STD",
                            "## Overall: averages, ranks, tests vs STD across tasks"]
    assert "Pooling treats the (task, seed) pairs as exchangeable" in markdown and "Holm over the 2 methods" in markdown
    assert "![plots/failure-rate.png]" in markdown and "![plots/collapse-k16-clean.png]" in markdown
    # one panel per metric of the fine-tuned model: not the count of probe rows, not the pretrained encoder's own
    assert plots.collapse_metrics(load_runs(records).runs) == ["collapse.cka", "collapse.probe_transfer_delta"]
    build_leaderboard(records, tmp_path / "out", "synth")
    assert _snapshot(tmp_path / "out") == first


def test_no_collapse_scatter_without_collapse_metrics(tmp_path: Path) -> None:
    _grid(tmp_path / "records", {"a": {"sst2": [0.01, 0.02, 0.0]}})
    build_leaderboard(tmp_path / "records", tmp_path / "out", "synth")
    assert not list((tmp_path / "out" / "plots").glob("collapse-*"))
    assert (tmp_path / "out" / "plots" / "failure-rate.svg").is_file()

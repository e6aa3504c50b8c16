"""results/REPRODUCTION.md (harness/leaderboard/reproduction*.py): each claim's verdict on synthetic records with a
known answer — supported when the effect is large, not supported when it is reversed, inconclusive with few seeds,
not tested when a method, block or field is missing — the exact tests it relies on, determinism, the command line,
and that the committed document is current with the records it names."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from leaderboard_synth import make_record, write
from scipy import stats as scipy_stats

from regbench.harness.cli import main
from regbench.harness.leaderboard import reproduction, reproduction_doc
from regbench.harness.leaderboard.loading import load_runs
from regbench.harness.leaderboard.reproduction_claims import BASELINES, CLAIMS, evaluate

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = ("sst2", "mr", "trec", "rte")
Score = Callable[[str, int], float]


def _base(task: str, seed: int) -> float:
    """STD-like scores that vary by task and seed (so differences have a spread)."""
    return 0.60 + 0.03 * SENTENCE.index(task) + 0.011 * seed if task in SENTENCE else 0.55 + 0.01 * seed


def _grid(root: Path, methods: dict[str, Score], *, tasks=SENTENCE[:2], seeds=range(1, 6), size="n256",
          noise=0.0, edit: Callable[[dict], None] | None = None, **record) -> None:
    for method, score in methods.items():
        for task in tasks:
            for seed in seeds:
                made = make_record(task, method, seed, score(task, seed), size=size, noise=noise, **record)
                if edit:
                    edit(made)
                write(root, made)


def _plus(delta: float, k: int = 0) -> Score:
    """The base score + delta ± 0.004: a wobble that differs by ``k`` (give each method its own), so differences
    between methods vary but keep the sign of a delta above 0.008."""
    return lambda task, seed: _base(task, seed) + delta + 0.004 * ((seed * 7 + len(task) + k) % 3 - 1)


def _outcome(root: Path, claim_id: str) -> reproduction.Outcome:
    runs = load_runs(root).runs
    return dict((c.id, o) for c, o in evaluate(runs))[claim_id]


def _in_domain(root: Path, repina_delta: float, seeds=range(1, 6), tasks=SENTENCE) -> None:
    methods = {b: _plus(0.0, k) for k, b in enumerate(BASELINES)}
    methods |= {"repina_i": _plus(repina_delta, 1), "repina_mlp": _plus(repina_delta, 2)}
    _grid(root, methods, tasks=tasks, seeds=seeds)


def test_in_domain_is_supported_when_repina_beats_all_five_baselines(tmp_path: Path) -> None:
    """4 tasks × 5 seeds, REPINA +5 points over each baseline: 10 comparisons, each p = 2/2^20, Holm ×10 < 0.05."""
    _in_domain(tmp_path, 0.05)
    outcome = _outcome(tmp_path, "R1")
    assert outcome.category == "supported" and len(outcome.rows) == 10
    assert all(r["pairs"] == 20 and r["family"] == 10 for r in outcome.rows)
    assert outcome.rows[0]["p_signflip"] == pytest.approx(2 / 2**20)
    assert outcome.rows[0]["diff"] == pytest.approx(0.05, abs=0.008)
    assert "mean above all 5 baselines' means on 4 of 4 tasks" in outcome.facts[0]


def test_in_domain_counts_tasks_where_repina_beats_every_baseline(tmp_path: Path) -> None:
    """The paper's "10 of 13" count: SMART is 10 points above the others on trec, so REPINA (+5) beats all five
    baselines' means on 3 of the 4 tasks, not on trec."""
    _in_domain(tmp_path, 0.05)
    _grid(tmp_path, {"smart": lambda task, seed: _base(task, seed) + 0.10}, tasks=("trec",))
    facts = _outcome(tmp_path, "R1").facts
    assert facts[0].startswith("repina_i: mean above all 5 baselines' means on 3 of 4 tasks (mr, rte, sst2)")
    assert facts[1].startswith("repina_mlp: mean above all 5 baselines' means on 3 of 4 tasks")


def test_in_domain_is_not_supported_when_reversed(tmp_path: Path) -> None:
    _in_domain(tmp_path, -0.05)
    outcome = _outcome(tmp_path, "R1")
    assert outcome.category == "not supported" and outcome.verdict.startswith(
        "not supported in 10 of 10 comparisons (repina_i − std++; repina_i − lp-ft;")
    assert all(r["verdict"] == "not supported (significant, opposite)" for r in outcome.rows)
    assert "on 0 of 4 tasks" in outcome.facts[0]


def test_in_domain_is_inconclusive_at_few_seeds(tmp_path: Path) -> None:
    """1 task × 6 seeds, all better: p = 2/2^6 < 0.05 alone, but Holm over the 10 comparisons gives 10 × 2/64, and
    6 pairs cannot reach 0.05 after Holm over 10 (MDE ∞), however large Δ."""
    _in_domain(tmp_path, 0.05, seeds=range(1, 7), tasks=SENTENCE[:1])
    outcome = _outcome(tmp_path, "R1")
    assert outcome.category == "inconclusive" and "MDE up to ∞ points" in outcome.verdict
    assert all(r["p_signflip"] == pytest.approx(2 / 64) and r["p_holm"] == pytest.approx(10 * 2 / 64)
               for r in outcome.rows)
    assert all(math.isinf(r["mde"]) and r["category"] == "inconclusive" for r in outcome.rows)


def test_in_domain_is_not_tested_without_a_baseline_or_the_block(tmp_path: Path) -> None:
    methods = {b: _plus(0.0) for b in BASELINES if b != "smart"} | {"repina_i": _plus(0.05)}
    _grid(tmp_path / "a", methods)
    outcome = _outcome(tmp_path / "a", "R1")
    assert outcome.category == "not tested" and outcome.rows == []
    assert outcome.verdict == "not tested here: no smart runs in a clean block of a total training size (n…)"
    _grid(tmp_path / "b", {"std": _plus(0.0), "repina_i": _plus(0.05)}, size="k16")
    assert _outcome(tmp_path / "b", "R1").verdict.startswith("not tested here: no runs in a clean block")


def test_verdict_rule() -> None:
    """The docstring's rule on hand-made rows: Holm decides; else Δ ≤ 0 with the upper end below a FINITE MDE."""
    row = {"pairs": 10, "nonzero": 10, "diff": -0.01, "delta_high": 0.01, "mde": 0.03, "p_holm": 0.3,
           "metric": reproduction.SCORE}
    assert reproduction.verdict(row) == ("not supported (upper 95% end +1.0 < MDE 3.0 points)", "not supported")
    assert reproduction.verdict({**row, "delta_high": 0.04})[1] == "inconclusive"
    assert reproduction.verdict({**row, "mde": math.inf}) == ("inconclusive at MDE ∞ points", "inconclusive")
    assert reproduction.verdict({**row, "diff": 0.01})[1] == "inconclusive"  # a positive Δ is never "ruled out"
    assert reproduction.verdict({**row, "p_holm": 0.01}) == ("not supported (significant, opposite)", "not supported")
    assert reproduction.verdict({**row, "p_holm": 0.01, "diff": 0.01}) == ("supported", "supported")
    assert reproduction.verdict({**row, "nonzero": 0, "diff": 0.0})[0] == "inconclusive: every pair equal"


def test_few_shot_vs_std_only_lists_the_missing_methods(tmp_path: Path) -> None:
    _grid(tmp_path, {"std": _plus(0.0), "repina_i": _plus(0.05, 1)}, size="k16", tasks=SENTENCE)
    outcome = _outcome(tmp_path, "R2")
    assert outcome.category == "supported" and [r["comparison"] for r in outcome.rows] == ["repina_i − std"]
    assert outcome.notes == ["repina_mlp runs (in a clean k-shot block (k… examples per class))",
                             "std++, lp-ft, l2-sp, smart, r3f runs (in a clean k-shot block (k… examples per class))"]


def test_no_matched_pairs_is_not_tested(tmp_path: Path) -> None:
    """REPINA on trec and STD on sst2 only: both methods are there, but no run pairs with another."""
    _grid(tmp_path, {"std": _plus(0.0)}, size="k16", tasks=("sst2",))
    _grid(tmp_path, {"repina_i": _plus(0.05)}, size="k16", tasks=("trec",))
    outcome = _outcome(tmp_path, "R2")
    assert outcome.category == "not tested" and "no matched runs" in outcome.verdict


def test_label_noise_compares_scores_and_drops_paired_by_seed(tmp_path: Path) -> None:
    """Clean: REPINA = STD. At 0.2: STD loses 10 points, REPINA 2: REPINA − STD = +8 noisy, and its change from
    clean (−2) minus STD's (−10) = +8 too, both over 2 tasks × 5 seeds."""
    _grid(tmp_path, {"std": _plus(0.0), "repina_i": _plus(0.0, 1)})
    _grid(tmp_path, {"std": _plus(-0.10), "repina_i": _plus(-0.02, 1)}, noise=0.2)
    outcome = _outcome(tmp_path, "R3")
    assert [r["comparison"] for r in outcome.rows] == ["repina_i − std at symmetric 0.2",
                                                       "repina_i − std: noisy − clean at symmetric 0.2"]
    assert outcome.rows[0]["diff"] == pytest.approx(0.08, abs=0.008)
    assert outcome.rows[1]["diff"] == pytest.approx(0.08)  # the method's own wobble cancels in noisy − clean
    assert all(r["pairs"] == 10 for r in outcome.rows) and outcome.category == "supported"
    assert _outcome(tmp_path, "R1").verdict == ("not tested here: no std++, lp-ft, l2-sp, smart, r3f runs in a clean "
                                                "block of a total training size (n…)")


def test_failures_use_the_exact_mcnemar_test(tmp_path: Path) -> None:
    """STD fails on 8 of 10 matched runs, REPINA on none: the sign-flip p on the 0/1 differences is the exact
    McNemar (binomial) p on the 8 discordant pairs, 2/2^8."""
    def failing(record: dict) -> None:
        info = record["run_info"]
        if info["method"] == "std" and info["seed"] + (info["task"] == "mr") * 5 <= 8:
            info["status"] = "failed"

    _grid(tmp_path, {"std": _plus(0.0), "repina_i": _plus(0.0)}, edit=failing)
    outcome = _outcome(tmp_path, "R4")
    row = outcome.rows[0]
    assert row["p_signflip"] == pytest.approx(scipy_stats.binomtest(8, 8).pvalue) == pytest.approx(2 / 2**8)
    assert row["diff"] == pytest.approx(0.8) and outcome.category == "supported"
    assert "failed: repina_i 0, std 8; discordant pairs: only repina_i failed 0, only std failed 8" in outcome.facts[0]


def test_collapse_reads_the_records_nested_metrics(tmp_path: Path) -> None:
    """Records keep record["metrics"]["collapse"] = {"metrics": …, "settings": …} (post.extras, schema version 2):
    the loader must flatten it, and REPINA's higher CKA (closer to the pretrained encoder) supports the claim for that
    metric."""
    def collapse(cka: float) -> Callable[[dict], None]:
        def edit(record: dict) -> None:
            seed = record["run_info"]["seed"]
            record["metrics"]["collapse"] = {"metrics": {"cka": cka + 0.01 * seed, "effective_rank": 20.0 + seed},
                                             "settings": {"probe_examples": 64}}
        return edit

    _grid(tmp_path, {"std": _plus(0.0)}, edit=collapse(0.5))
    _grid(tmp_path, {"repina_i": _plus(0.0)}, edit=collapse(0.8))
    runs = load_runs(tmp_path).runs
    assert runs["collapse.cka"].notna().all()
    outcome = _outcome(tmp_path, "R5")
    assert [(r["comparison"], r["category"]) for r in outcome.rows] == [
        ("repina_i − std, CKA", "supported"), ("repina_i − std, effective rank", "inconclusive")]
    assert outcome.rows[0]["diff"] == pytest.approx(0.3)
    assert outcome.notes[-1] == "collapse metric collapse.probe_transfer_delta"
    assert outcome.category == "inconclusive"  # effective rank: every pair equal


def test_ood_pairs_over_sets(tmp_path: Path) -> None:
    _grid(tmp_path, {"std": _plus(0.0)}, ood={"imdb": 0.6, "cr": 0.7})
    _grid(tmp_path, {"repina_i": _plus(0.0)}, ood={"imdb": 0.5, "cr": 0.6})
    outcome = _outcome(tmp_path, "R6")
    assert outcome.rows[0]["pairs"] == 20 and outcome.rows[0]["tasks"] == 4
    assert outcome.rows[0]["diff"] == pytest.approx(-0.1) and outcome.category == "not supported"
    assert outcome.facts == ["OOD sets: cr, imdb"]


def test_mvcr_sequence_and_token_level(tmp_path: Path) -> None:
    _grid(tmp_path, {"std": _plus(0.0), "mvcr": _plus(0.03, 1)}, size="k16")
    _grid(tmp_path, {"std": _plus(0.0), "mvcr": _plus(0.03, 1)}, tasks=("conll2003",))
    sequence = _outcome(tmp_path, "M1")
    assert [r["comparison"] for r in sequence.rows] == ["mvcr − std, k-shot block"]  # n256 holds a token task only
    assert sequence.category == "supported" and sequence.rows[0]["pairs"] == 10
    token = _outcome(tmp_path, "M2")
    assert token.rows[0]["pairs"] == 5 and token.rows[0]["tasks"] == 1
    assert token.category == "inconclusive"  # 5 pairs: floor 2/32 = 0.0625


def test_mvcr_inference_parameters(tmp_path: Path) -> None:
    def params(count: int) -> Callable[[dict], None]:
        return lambda record: record["train_info"].update(inference_parameters=count)

    _grid(tmp_path / "same", {"std": _plus(0.0), "mvcr": _plus(0.0)}, edit=params(22_000_000))
    same = _outcome(tmp_path / "same", "M3")
    assert same.verdict == "supported (all 10 mvcr runs match std)"
    _grid(tmp_path / "differ", {"std": _plus(0.0)}, edit=params(22_000_000))
    _grid(tmp_path / "differ", {"mvcr": _plus(0.0)}, edit=params(22_500_000))
    assert _outcome(tmp_path / "differ", "M3").verdict == "not supported (10 of 10 runs differ)"
    _grid(tmp_path / "none", {"std": _plus(0.0), "mvcr": _plus(0.0)})
    assert _outcome(tmp_path / "none", "M3").category == "not tested"


def test_every_claim_has_a_row_and_the_document_is_deterministic(tmp_path: Path) -> None:
    records = tmp_path / "records"
    _grid(records, {"std": _plus(0.0), "repina_i": _plus(0.01), "mvcr": _plus(-0.01)}, size="k16")
    first = reproduction_doc.render(records)
    assert first == reproduction_doc.render(records)
    for claim in CLAIMS:
        assert f"| {claim.id} |" in first and f"### {claim.id}. " in first
    assert "## How our setting differs from the papers" in first and "Seeds: 5 (1, 2, 3, 4, 5)" in first


def test_cli_writes_the_document_and_states_its_command(tmp_path: Path) -> None:
    records = tmp_path / "records"
    _grid(records, {"std": _plus(0.0), "repina_i": _plus(0.01)}, size="k16")
    out = tmp_path / "out" / "REPRO.md"
    assert main(["reproduction", "--records", str(records), "--out", str(out)]) == 0
    text = out.read_text()
    assert f"Regenerate: `regbench reproduction --records {records} --out {out}`" in text
    assert text == reproduction_doc.render(records, command=f"regbench reproduction --records {records} --out {out}")
    assert main(["reproduction"]) == 2  # neither --profile nor --records
    assert main(["reproduction", "--records", str(records), "--out", str(tmp_path)]) == 2  # a directory
    assert main(["reproduction", "--records", str(tmp_path / "none")]) == 2  # no records there


def test_committed_document_is_current_with_its_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """results/REPRODUCTION.md regenerated from the records (and cell summaries) it names, with the command it
    states, equals the committed bytes."""
    path = ROOT / "results" / "REPRODUCTION.md"
    assert path.is_file(), "results/REPRODUCTION.md is missing: run regbench reproduction --profile small"
    text = path.read_text()
    records = re.search(r"^- Records: `([^`]+)` \(cell summaries: `([^`]+)`\)$", text, re.M)
    command = re.search(r"^- Regenerate: `([^`]+)`$", text, re.M)
    assert records and command, "the document does not name its records and command"
    monkeypatch.chdir(ROOT)
    assert reproduction_doc.render(records[1], records[2], command[1]) == text, (
        "results/REPRODUCTION.md is out of date: run " + command[1])

"""``results/REPRODUCTION.md``: one row per claim of the seed papers (reproduction_claims.py), their details, the
provenance of the records and how our setting differs from the papers'. A pure function of the records (and cell
summaries): every number in it is computed here from them, nothing is typed by hand, and there is no timestamp, so
the same records give the same bytes (tests/test_reproduction.py checks the committed file is current).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from regbench.harness.io.cell_summaries import CELLS

from . import captions, intervals, reproduction, stats
from .loading import Loaded, load_cells, load_runs
from .render import markdown
from .reproduction_claims import CLAIMS, evaluate
from .tables import Cell, Table

TITLE = "Reproduction of the seed papers' claims"
RECORDS_LINE = "Records: `{records}` (cell summaries: `{cells}`)"  # the currency test reads the paths back


def _p(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3g}"


def _numbers(row: dict[str, Any]) -> str:
    """One comparison in a line: Δ [95% CI] in its units, Holm p, pairs, MDE."""
    metric: reproduction.Metric = row["metric"]
    if not row["pairs"]:
        return f"{row['comparison']}: no matched pairs"
    return (f"{row['comparison']}: Δ {metric.show(row['diff'])} [{metric.show(row['delta_low'])}, "
            f"{metric.show(row['delta_high'])}], p(Holm) {_p(row['p_holm'])}, n {row['pairs']}, MDE "
            f"{metric.show(row['mde'], False)}" + ("" if metric.unit == "points" else f" ({metric.unit})"))


def claims_table(results: list[tuple[reproduction.Claim, reproduction.Outcome]]) -> Table:
    rows = []
    for claim, outcome in results:
        numbers = [_numbers(r) for r in outcome.rows] or outcome.facts[:1] or ["—"]
        rows.append([Cell(claim.id), Cell(claim.paper.split(" (")[0]), Cell(claim.text), Cell(claim.test),
                     Cell("<br>".join(numbers)), Cell(outcome.verdict, bold=outcome.category == "supported")])
    note = ("Δ = method − reference over matched runs, oriented so that Δ > 0 is the direction the paper claims; "
            "scores and rates ×100 (points); [95% interval]: percentile bootstrap of the pairs resampled within "
            f"each stratum (B = {intervals.RESAMPLES_FAST}, fixed seed); p(Holm): exact two-sided sign-flip p, Holm "
            "over the claim's comparisons; n: matched pairs; MDE: paired t at 80% power, two-sided α = "
            f"{stats.ALPHA:g}, at that n (∞ where the exact test cannot reach α after Holm). Details below")
    return Table("claims", "Claims", ["#", "Paper", "Claim", "Our test", "Numbers", "Verdict"], rows, note=note)


def detail_table(claim: reproduction.Claim, outcome: reproduction.Outcome) -> Table:
    columns = ["Comparison", "Metric", "Strata", "Seeds", "Pairs n", "Δ", "Δ 95% CI", "sign-flip p", "floor",
               "p (Holm)", "MDE", "Verdict"]
    rows = []
    for r in outcome.rows:
        m: reproduction.Metric = r["metric"]
        ci = f"[{m.show(r['delta_low'])}, {m.show(r['delta_high'])}]" if r["pairs"] else "—"
        rows.append([Cell(x) for x in (
            r["comparison"], f"{m.label} ({m.unit})", str(r["tasks"]), str(r["seeds"]), str(r["pairs"]),
            m.show(r["diff"]) if r["pairs"] else "—", ci, _p(r["p_signflip"]), _p(r["signflip_floor"]),
            _p(r["p_holm"]), m.show(r["mde"], False) if r["pairs"] else "—", r["verdict"])])
    family = len([r for r in outcome.rows if r["pairs"]])
    bases = sorted({r["basis"] for r in outcome.rows if r["pairs"]})
    note = (f"Family: the {family} comparison(s) of {claim.id} (Holm). Sign-flip p: {', '.join(bases) or '—'}; "
            f"a significant result needs ≥ {stats.min_pairs(stats.ALPHA, max(family, 1))} non-zero pairs in a "
            "family of this size. Strata: (size, noise, task) groups the pairs are resampled within")
    return Table(f"detail-{claim.id}", f"{claim.id}: comparisons", columns, rows, note=note)


def _detail(claim: reproduction.Claim, outcome: reproduction.Outcome) -> list[str]:
    lines = [f"### {claim.id}. {claim.paper}", "", f"- Claim: {claim.text}", f"- Our test: {claim.test}",
             f"- Verdict: **{outcome.verdict}**"]
    lines += [f"- {fact}" for fact in outcome.facts] + [f"- Not in the records: {note}" for note in outcome.notes]
    if outcome.rows:
        lines += ["", markdown(detail_table(claim, outcome))]
    return [*lines, ""]


def _counted(values: pd.Series) -> str:
    return ", ".join(f"{v} ({n})" for v, n in sorted(Counter(str(x) for x in values).items()))


def provenance(loaded: Loaded, tuning: pd.DataFrame, records: str, cells: str, command: str) -> list[str]:
    runs = loaded.runs
    status = Counter(runs["status"])
    shas = runs["git_sha"].fillna("unknown") + runs["git_dirty"].map({True: " (dirty)"}).fillna("")
    plain = captions.plain_caption(runs, tuning).split(". ")[:-1]  # seeds, trials, test sets (no tests there)
    return [f"Regenerate: `{command}`", RECORDS_LINE.format(records=records, cells=cells),
            f"Read: {len(runs)} final runs of suite version {loaded.suite_version} (ok {status['ok']}, failed "
            f"{status['failed']}, diverged {status['diverged']}); {len(loaded.skipped)} files skipped as unreadable "
            f"or invalid; {loaded.replaced} older duplicates replaced; {sum(loaded.older.values())} records of "
            f"older suite versions ignored; {len(tuning)} cell summaries",
            f"Blocks (size noise, runs): {_counted(runs['size'] + ' ' + runs['noise'])}",
            f"Methods (runs): {_counted(runs['method'])}", f"Tasks (runs): {_counted(runs['task'])}",
            f"Profile (runs): {_counted(runs['profile'].fillna('none'))}", *plain,
            f"Code (git SHA, runs): {_counted(shas)}",
            f"Model (checksum, runs): {_counted(runs['model'].fillna('?') + ' ' + runs['model_checksum'].fillna('?'))}"]


RULE = ("Verdict rule (reproduction.py). Per comparison: **supported** = the Holm-corrected exact sign-flip p < "
        f"{stats.ALPHA:g} with Δ in the claimed direction; **not supported** = significant in the opposite direction, "
        "or Δ ≤ 0 with the 95% interval's upper end below a finite MDE (the data rule out a gain as large as the "
        "detectable effect); otherwise **inconclusive at MDE x.x** (the effect the comparison could have detected "
        "with 80% power). A claim is supported when every comparison of its family is, not supported when any is "
        "not supported, inconclusive otherwise. A method, block or field the records lack makes a claim **not "
        "tested here**, with what is missing. The rule is applied whichever way the numbers fall.")


def render(records: str | Path, cells: str | Path | None = None, command: str | None = None) -> str:
    """The whole document for the records under ``records`` (cell summaries: ``cells``, default beside them)."""
    from .reproduction_setting import differences

    cells = Path(cells) if cells else Path(records).parent / CELLS
    loaded = load_runs(records)
    tuning = load_cells(cells, loaded.skipped)
    command = command or f"regbench reproduction --records {records}"
    results = evaluate(loaded.runs)
    verdicts = Counter(outcome.category for _, outcome in results)
    profiles = sorted(set(loaded.runs["profile"].dropna()))
    lines = [f"# {TITLE}" + (f" — {', '.join(profiles)}" if profiles else ""), "",
             "Generated from the records below by `regbench reproduction` (harness/leaderboard/reproduction*.py): "
             "every number is computed from the records, none is typed by hand; tests/test_reproduction.py checks "
             "that this file is current with them.", ""]
    lines += [f"- {line}" for line in provenance(loaded, tuning, str(records), str(cells), command)]
    lines += ["", RULE, "", "## Claims", "",
              f"{len(CLAIMS)} claims: " + ", ".join(f"{verdicts[c]} {c}" for c in
                                                    ("supported", "not supported", "inconclusive", "not tested")),
              "", markdown(claims_table(results)), "", "## Details", ""]
    for claim, outcome in results:
        lines += _detail(claim, outcome)
    lines += ["## How our setting differs from the papers", "",
              "Facts of our setup (numbers from the records and the code), and what each difference may change.", ""]
    lines += [f"- {item}" for item in differences(loaded.runs, tuning)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write(records: str | Path, out: str | Path, cells: str | Path | None = None, command: str | None = None) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(records, cells, command))
    return path

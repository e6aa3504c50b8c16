"""Statistics → format-neutral tables (cells carry text, a sort key, bold and a significance mark); the Markdown,
LaTeX and HTML renderers only decide how a bold cell or a mark looks.

Scores are shown ×100 with one decimal (mean ± std over seeds); p-values with 3 significant digits; "—" = no value.
An incomplete cell (fewer seeds than its block has) shows ``[n/m]`` and is never bolded; bold = best complete cell of
its column (ties all bold; for average rank, the lowest). ▲/▼ = significantly better/worse than STD.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .aggregate import BASELINE
from .loading import noise_order, size_order
from .pooled import verdict


@dataclass(frozen=True)
class Cell:
    text: str
    sort: float | str | None = None
    bold: bool = False
    mark: int = 0  # +1 significantly better than STD, -1 worse


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    families: list[str] = field(default_factory=list)  # per column: the task family ('' for other columns)
    row_filters: list[dict[str, str]] = field(default_factory=list)  # per row: size / noise / family
    note: str = ""


def slug(text: str) -> str:
    """A file-name and HTML-id safe form of a label (``symmetric 0.2`` → ``symmetric-0-2``). Signs that tell
    method names apart become words first, so ``std++`` (``std-plus-plus``) cannot overwrite ``std``'s files."""
    for sign, word in (("+", "-plus-"), ("*", "-star-"), ("#", "-sharp-"), ("@", "-at-"), ("&", "-and-")):
        text = text.replace(sign, word)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def file_slugs(names: Any) -> dict[str, str]:
    """A distinct slug per name: where two names still share one (``a b`` / ``a-b``), the later ones in sorted
    order get ``-2``, ``-3``… (deterministic, so regeneration keeps the file names)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(names):
        base = candidate = slug(name)
        count = 1
        while candidate in taken:
            count += 1
            candidate = f"{base}-{count}"
        out[name] = candidate
        taken.add(candidate)
    return out


def score(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}"


def pvalue(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3g}"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def blocks(cells: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = {(s, n) for s, n in zip(cells["size"], cells["noise"])}
    return sorted(pairs, key=lambda b: (size_order(b[0]), noise_order(b[1])))


def task_order(cells: pd.DataFrame) -> list[str]:
    families = cells.drop_duplicates("task").set_index("task")["family"]
    return sorted(families.index, key=lambda t: (families[t], t))


def method_order(cells: pd.DataFrame) -> list[str]:
    """STD first (the reference row), then the others alphabetically."""
    return sorted(cells["method"].unique(), key=lambda m: (m != BASELINE, m))


def _best(values: dict[str, float | None], lowest: bool = False) -> set[str]:
    found = {k: v for k, v in values.items() if v is not None}
    if not found:
        return set()
    target = min(found.values()) if lowest else max(found.values())
    return {k for k, v in found.items() if abs(v - target) <= 1e-12}


def main_table(cells: pd.DataFrame, summary: pd.DataFrame, size: str, noise: str, caption: str = "") -> Table:
    """Rows = methods, columns = tasks (mean ± std), average, average rank."""
    block = cells[(cells["size"] == size) & (cells["noise"] == noise)]
    over = summary[(summary["size"] == size) & (summary["noise"] == noise)].set_index("method")
    tasks, methods = task_order(block), method_order(block)
    by = {(r.task, r.method): r for r in block.itertuples()}
    best = {t: _best({m: _num(by[t, m].mean) for m in methods if (t, m) in by and by[t, m].complete}) for t in tasks}
    best_avg = _best({m: _num(over["average"].get(m)) for m in methods})
    best_rank = _best({m: _num(over["average_rank"].get(m)) for m in methods}, lowest=True)
    fam = block.drop_duplicates("task").set_index("task")["family"]
    table = Table(f"main-{slug(size)}-{slug(noise)}", f"{size}, {noise}", ["Method", *tasks, "Average", "Avg. rank"],
                  families=["", *[fam[t] for t in tasks], "", ""],
                  note="mean ± std over seeds, ×100; ▲/▼ significantly better/worse than STD (exact sign-flip test, "
                       "Holm over the whole table, p < 0.05); [n/m] incomplete: n of m seeds scored; † excluded "
                       "from averages; ‡ test set is a held-out part of the task's training sample, not its "
                       "official test split" + (f". {caption}" if caption else ""))
    for m in methods:
        row = [Cell(m, m)]
        for t in tasks:
            row.append(_score_cell(by.get((t, m)), m in best[t]))
        average = _num(over["average"].get(m)) if m in over.index else None
        row.append(Cell(score(average) if average is not None else "incomplete", average, m in best_avg))
        rank = _num(over["average_rank"].get(m)) if m in over.index else None
        row.append(Cell("—" if rank is None else f"{rank:.2f}", rank, m in best_rank))
        table.rows.append(row)
        table.row_filters.append({"size": size, "noise": noise, "family": ""})
    table.columns = ["Method", *[t + _marks(block, t) for t in tasks], "Average", "Avg. rank"]
    return table


def _marks(block: pd.DataFrame, task: str) -> str:
    rows = block.loc[block["task"] == task]
    return ("†" if rows["exclude_from_average"].any() else "") + ("‡" if rows["heldout_test"].any() else "")


def _score_cell(row: Any, bold: bool) -> Cell:
    if row is None:
        return Cell("—")
    text = f"{score(row.mean)} ± {score(row.std)}" if math.isfinite(row.std) else score(row.mean)
    if not row.complete:
        text += f" [{row.scored}/{row.expected_seeds}]"
    return Cell(text, _num(row.mean), bold and row.complete, int(row.sig))


def _overall_note(first: Any) -> str:
    if not math.isfinite(first["friedman_p"]):
        return "Friedman test: n/a (needs ≥ 2 tasks and ≥ 3 methods with every task)"
    return (f"Friedman over {first['friedman_methods']} methods with every task: χ² p = {pvalue(first['friedman_p'])}"
            f"; Iman–Davenport F = {first['iman_davenport_f']:.3g}, p = {pvalue(first['iman_davenport_p'])}"
            f"{' (every task ranks the methods alike)' if math.isinf(first['iman_davenport_f']) else ''}; "
            f"Nemenyi critical difference of average ranks (α = 0.05): {pvalue(first['cd'])}")


OVERALL_COLUMNS = ["Method", "Average", "Avg. rank", "Tasks paired", "Wilcoxon p", "Wilcoxon p (Holm)",
                   "Rank z p vs STD (Holm)", "ASO ε_min vs STD", "Failure rate"]


def overall_table(summary: pd.DataFrame, size: str, noise: str, caption: str = "") -> Table:
    block = summary[(summary["size"] == size) & (summary["noise"] == noise)]
    note = (_overall_note(block.iloc[0]) + ". Wilcoxon signed-rank on per-task mean differences to STD (one pair "
            f"per task), Holm over the {int(block['wilcoxon_p'].notna().sum())} methods; ▲/▼ when its Holm p < "
            "0.05. Rank z: Demšar's test of average ranks against STD as control, Holm over the methods. ASO: "
            "almost stochastic order on task-centred (task, seed) scores; ε_min < 0.5 = the method tends to score "
            "above STD (0 = always), ≥ 0.5 = no such evidence" + (f". {caption}" if caption else ""))
    table = Table(f"overall-{slug(size)}-{slug(noise)}", f"{size}, {noise}", list(OVERALL_COLUMNS), note=note)
    for r in sorted(block.itertuples(), key=lambda r: (r.method != BASELINE, r.method)):
        table.rows.append([Cell(r.method, r.method), Cell(score(r.average), _num(r.average)),
                           Cell(f"{r.average_rank:.2f}", _num(r.average_rank)), Cell(str(r.task_pairs), r.task_pairs),
                           Cell(pvalue(r.wilcoxon_p), _num(r.wilcoxon_p)),
                           Cell(pvalue(r.wilcoxon_p_holm), _num(r.wilcoxon_p_holm), mark=r.overall_sig),
                           Cell(pvalue(r.rank_p_holm), _num(r.rank_p_holm)),
                           Cell("—" if not math.isfinite(r.aso) else f"{r.aso:.2f}", _num(r.aso)),
                           Cell(f"{r.failure_rate:.0%}", _num(r.failure_rate))])
        table.row_filters.append({"size": size, "noise": noise, "family": ""})
    return table


DETAIL_COLUMNS = ["Task", "Method", "Seeds", "Mean", "Std", "95% t-CI", "Chance", "Δ vs STD", "Δ 95% CI",
                  "Δ CI basis", "sign-flip p", "floor", "sign-flip p (Holm)", "t p", "Failure rate"]


def _interval(low: float, high: float) -> str:
    return "—" if not math.isfinite(low) else f"[{score(low)}, {score(high)}]"


def _floor(r: Any) -> str:
    if not math.isfinite(r.signflip_floor):
        return "—"
    text = pvalue(r.signflip_floor)
    return text if r.reachable else f"{text}: {r.nonzero} seeds cannot reach p < 0.05"


def detail_table(cells: pd.DataFrame, size: str, noise: str, caption: str = "") -> Table:
    block = cells[(cells["size"] == size) & (cells["noise"] == noise)]
    table = Table(f"detail-{slug(size)}-{slug(noise)}", f"{size}, {noise}", list(DETAIL_COLUMNS),
                  note="scores ×100; 95% t-CI: t-interval of the mean over seeds; chance: majority-class score on "
                       "the test set; Δ CI: two-level bootstrap over seeds × test examples, or seeds only (t) where "
                       "the records carry no gold references; sign-flip p: exact, over the seeds shared with STD "
                       "(floor: the smallest p its non-zero pairs allow); ▲/▼ on its Holm p; t p: paired t-test, "
                       "uncorrected, for reference (— when the differences do not vary)"
                       + (f". {caption}" if caption else ""))
    order = {t: i for i, t in enumerate(task_order(block))}
    methods = {m: i for i, m in enumerate(method_order(block))}
    for r in sorted(block.itertuples(), key=lambda r: (order[r.task], methods[r.method])):
        table.rows.append([Cell(r.task, r.task), Cell(r.method, r.method),
                           Cell(f"{r.scored}/{r.expected_seeds}", r.scored),
                           Cell(score(r.mean), _num(r.mean)), Cell(score(r.std), _num(r.std)),
                           Cell(_interval(r.ci_low, r.ci_high), _num(r.ci_low)), Cell(score(r.chance), _num(r.chance)),
                           Cell(score(r.diff), _num(r.diff)), Cell(_interval(r.delta_low, r.delta_high),
                                                                    _num(r.delta_low)),
                           Cell(r.delta_ci or "—", r.delta_ci), Cell(pvalue(r.p_signflip), _num(r.p_signflip)),
                           Cell(_floor(r), _num(r.signflip_floor)),
                           Cell(pvalue(r.p_signflip_holm), _num(r.p_signflip_holm), mark=int(r.sig)),
                           Cell(pvalue(r.p_t), _num(r.p_t)),
                           Cell(f"{r.failure_rate:.0%} ({r.failures}/{r.runs})", _num(r.failure_rate))])
        table.row_filters.append({"size": size, "noise": noise, "family": r.family})
    return table


NOISE_COLUMNS = ["Size", "Task", "Method", "Noise", "Seeds paired", "Clean", "Noisy", "Noisy − clean",
                 "95% t-CI", "Chance", "Clean above chance", "Noisy above chance"]


def noise_table(frame: pd.DataFrame, note: str = "") -> Table:
    """Noisy − clean paired by seed per (size, task, method, noise level); ×100."""
    table = Table("robustness-paired", "noisy − clean, paired by seed", list(NOISE_COLUMNS),
                  note="×100; noisy − clean over the seeds a method has at both levels, with the t-interval of the "
                       "paired differences; chance: majority-class score on the clean test set (— in records "
                       "without train_info.majority_test)" + (f". {note}" if note else ""))
    methods = {m: (m != BASELINE, m) for m in frame["method"].unique()}
    for r in sorted(frame.itertuples(), key=lambda r: (size_order(r.size), r.task, noise_order(r.noise),
                                                       methods[r.method])):
        table.rows.append([Cell(r.size, r.size), Cell(r.task, r.task), Cell(r.method, r.method),
                           Cell(r.noise, r.noise), Cell(str(r.seeds), r.seeds), Cell(score(r.clean), _num(r.clean)),
                           Cell(score(r.noisy), _num(r.noisy)), Cell(score(r.change), _num(r.change)),
                           Cell(_interval(r.change_low, r.change_high), _num(r.change_low)),
                           Cell(score(r.chance), _num(r.chance)),
                           Cell(score(r.clean_above_chance), _num(r.clean_above_chance)),
                           Cell(score(r.noisy_above_chance), _num(r.noisy_above_chance))])
        table.row_filters.append({"size": r.size, "noise": r.noise, "family": ""})
    return table


def frame_table(key: str, title: str, frame: pd.DataFrame, formats: dict[str, Any] | None = None,
                note: str = "") -> Table:
    """Any small DataFrame as a table; ``formats`` maps a column to a value → text function (default: str/score)."""
    formats = formats or {}
    table = Table(key, title, [str(c) for c in frame.columns], note=note)
    for record in frame.to_dict("records"):
        row = []
        for column, value in record.items():
            fmt = formats.get(column)
            text = fmt(value) if fmt else (score(value) if isinstance(value, float) else str(value))
            row.append(Cell(text, _num(value) if isinstance(value, (int, float)) else str(value)))
        table.rows.append(row)
        table.row_filters.append({k: str(record.get(k, "")) for k in ("size", "noise")} | {"family": ""})
    return table


POOLED_COLUMNS = ["Method", "Tasks", "Pairs n", "Mean Δ", "Δ 95% CI", "sign-flip p", "floor", "sign-flip p (Holm)",
                  "t p", "Tasks W / L / T", "Verdict"]


def pooled_table(frame: pd.DataFrame, size: str, noise: str, caption: str = "") -> Table:
    """Per method ≠ STD: every (task, seed) pair with STD pooled (pooled.py); ×100; the verdict in words."""
    block = frame[(frame["size"] == size) & (frame["noise"] == noise)]
    table = Table(f"pooled-{slug(size)}-{slug(noise)}", f"{size}, {noise}", list(POOLED_COLUMNS),
                  note="×100; pairs: the (task, seed) runs where the method and STD both have a test score; Δ = "
                       "method − STD, mean over the pairs; floor: the smallest p its non-zero pairs allow; ▲/▼ on "
                       "the Holm p (< 0.05); t p: paired t on the same pairs, uncorrected, for reference (— when the "
                       "differences do not vary); verdict: better / worse where marked, else inconclusive at the "
                       "MDE of its n pairs" + (f". {caption}" if caption else ""))
    for r in block.itertuples():
        floor = pvalue(r.signflip_floor)
        if math.isfinite(r.signflip_floor) and r.signflip_floor >= 0.05:
            floor += f": {r.nonzero} pairs cannot reach p < 0.05"
        table.rows.append([Cell(r.method, r.method), Cell(str(r.tasks), r.tasks), Cell(str(r.pairs), r.pairs),
                           Cell(score(r.diff), _num(r.diff)),
                           Cell(_interval(r.delta_low, r.delta_high), _num(r.delta_low)),
                           Cell(pvalue(r.p_signflip), _num(r.p_signflip)), Cell(floor, _num(r.signflip_floor)),
                           Cell(pvalue(r.p_signflip_holm), _num(r.p_signflip_holm), mark=int(r.sig)),
                           Cell(pvalue(r.p_t), _num(r.p_t)),
                           Cell(f"{r.wins} / {r.losses} / {r.ties}", r.wins - r.losses),
                           Cell(verdict(r), int(r.sig))])
        table.row_filters.append({"size": size, "noise": noise, "family": ""})
    return table

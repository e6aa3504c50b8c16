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
    """A file-name and HTML-id safe form of a label (``symmetric 0.2`` → ``symmetric-0-2``)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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


def main_table(cells: pd.DataFrame, summary: pd.DataFrame, size: str, noise: str) -> Table:
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
                  note="mean ± std over seeds, ×100; ▲/▼ significantly better/worse than STD (paired t-test, "
                       "Holm across tasks, p < 0.05); [n/m] incomplete: n of m seeds; † excluded from averages; "
                       "‡ test set is a held-out part of the task's training sample, not its official test split")
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
        text += f" [{row.seeds}/{row.expected_seeds}]"
    return Cell(text, _num(row.mean), bold and row.complete, int(row.sig))


def overall_table(summary: pd.DataFrame, size: str, noise: str) -> Table:
    block = summary[(summary["size"] == size) & (summary["noise"] == noise)]
    first = block.iloc[0]
    note = (f"Friedman over tasks: p = {pvalue(first['friedman_p'])}; Nemenyi critical difference of average ranks"
            f" (α = 0.05): {pvalue(first['cd'])}" if math.isfinite(first["friedman_p"])
            else "Friedman test: n/a (needs ≥ 2 tasks and ≥ 3 methods with every task)")
    table = Table(f"overall-{slug(size)}-{slug(noise)}", f"{size}, {noise}", ["Method", "Average", "Avg. rank",
                  "(task, seed) pairs", "Wilcoxon p vs STD", "Failure rate"], note=note)
    for r in sorted(block.itertuples(), key=lambda r: (r.method != BASELINE, r.method)):
        table.rows.append([Cell(r.method, r.method), Cell(score(r.average), _num(r.average)),
                           Cell(f"{r.average_rank:.2f}", _num(r.average_rank)), Cell(str(r.pairs), r.pairs),
                           Cell(pvalue(r.wilcoxon_p), _num(r.wilcoxon_p), mark=r.overall_sig),
                           Cell(f"{r.failure_rate:.0%}", _num(r.failure_rate))])
        table.row_filters.append({"size": size, "noise": noise, "family": ""})
    return table


DETAIL_COLUMNS = ["Task", "Method", "Seeds", "Mean", "Std", "95% CI", "Δ vs STD", "t p", "t p (Holm)",
                  "sign-flip p (floor)", "sign-flip p (Holm)", "Failure rate"]


def detail_table(cells: pd.DataFrame, size: str, noise: str) -> Table:
    block = cells[(cells["size"] == size) & (cells["noise"] == noise)]
    table = Table(f"detail-{slug(size)}-{slug(noise)}", f"{size}, {noise}", list(DETAIL_COLUMNS),
                  note="scores ×100; CI: percentile bootstrap of the mean over seeds; paired tests over the seeds "
                       "shared with STD; sign-flip floor: the smallest p its seed count allows")
    order = {t: i for i, t in enumerate(task_order(block))}
    methods = {m: i for i, m in enumerate(method_order(block))}
    for r in sorted(block.itertuples(), key=lambda r: (order[r.task], methods[r.method])):
        ci = "—" if not math.isfinite(r.ci_low) else f"[{score(r.ci_low)}, {score(r.ci_high)}]"
        seeds = f"{r.seeds}/{r.expected_seeds}"
        flip = "—" if not math.isfinite(r.p_signflip) else f"{pvalue(r.p_signflip)} ({pvalue(r.signflip_floor)})"
        table.rows.append([Cell(r.task, r.task), Cell(r.method, r.method), Cell(seeds, r.seeds),
                           Cell(score(r.mean), _num(r.mean)), Cell(score(r.std), _num(r.std)), Cell(ci, _num(r.ci_low)),
                           Cell(score(r.diff), _num(r.diff)), Cell(pvalue(r.p_t), _num(r.p_t)),
                           Cell(pvalue(r.p_t_holm), _num(r.p_t_holm), mark=int(r.sig)),
                           Cell(flip, _num(r.p_signflip)), Cell(pvalue(r.p_signflip_holm), _num(r.p_signflip_holm)),
                           Cell(f"{r.failure_rate:.0%} ({r.failures}/{r.runs})", _num(r.failure_rate))])
        table.row_filters.append({"size": size, "noise": noise, "family": r.family})
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

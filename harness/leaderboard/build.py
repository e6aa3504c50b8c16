"""``build_leaderboard``: records (+ cell summaries) → leaderboard.md/.tex/.csv, index.html and plots/, a pure
function of its inputs (never of MLflow); optionally mirrored as artifacts of a ``leaderboard`` MLflow run.

Nothing in the outputs depends on the clock or the machine: same records → byte-identical files. ``plots/`` is
owned by the leaderboard: its old PNG/SVG files are removed first, so a plot of a vanished cell cannot linger.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from . import aggregate, captions, html, importance, plots, pooled, render, robustness, tables
from .loading import Loaded, load_cells, load_runs, noise_order, phase_exceptions, size_order

OUTPUTS = ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "leaderboard_overall.csv", "index.html")


def _counted(values: pd.Series) -> str:
    return ", ".join(f"{v} ({n})" for v, n in sorted(Counter(str(x) for x in values).items()))


def provenance(loaded: Loaded, cells: pd.DataFrame, command: str) -> list[str]:
    runs = loaded.runs
    statuses = Counter(runs["status"])
    shas = runs["git_sha"].fillna("unknown") + runs["git_dirty"].map({True: " (dirty)"}).fillna("")
    data: dict[str, str] = {}
    for files in runs["data_files"]:
        data.update(json.loads(files))
    return [
        f"Regenerate: `{command}`",
        f"Records: {len(runs)} final runs of suite version {loaded.suite_version} (ok {statuses['ok']}, failed "
        f"{statuses['failed']}, diverged {statuses['diverged']}); {len(loaded.skipped)} skipped as unreadable or "
        f"invalid; {loaded.ignored} of other phases ignored; {loaded.replaced} older duplicates replaced; "
        f"{len(cells)} cell summaries",
        *[f"{n} records of suite version {v} ignored (older protocol)" for v, n in sorted(loaded.older.items())],
        f"No test score: {int(runs['at_majority'].sum())} runs scored at the majority-class level "
        f"(train_info.majority_test) and counted as failures; {int(runs['unscored'].sum())} without "
        "majority_test left unscored (their cells are incomplete)",
        "Extra phases (every method gets the same dev evaluations of its main phase): "
        + (phase_exceptions(runs) or "none"),
        f"Profile: {_counted(runs['profile'].fillna('none'))}",
        f"Code (git SHA, records): {_counted(shas)}",
        f"Packages (records): {_counted(runs['packages'].map(_packages))}",
        f"Model (checksum, records): {_counted(runs['model'].fillna('?') + ' ' + runs['model_checksum'].fillna('?'))}",
        # task folder/file: every task's files are called train/test.parquet; the records' absolute paths are per host
        "Data (sha256): " + (", ".join(f"{'/'.join(Path(k).parts[-2:])} {v[:12]}"
                                       for k, v in sorted(data.items())) or "none"),
    ]


def _packages(text: str) -> str:
    return " ".join(f"{k}=={v}" for k, v in sorted(json.loads(text).items()) if v)


def _frames(loaded: Loaded, tuning: pd.DataFrame) -> dict[str, Any]:
    cells = aggregate.add_ranks(aggregate.cell_stats(loaded.runs))
    return {"cells": cells, "summary": aggregate.overall(loaded.runs, cells), "info": aggregate.table_info(cells),
            "cost": aggregate.cost(loaded.runs, tuning), "best": importance.best_params_table(tuning),
            "points": importance.sensitivity_points(tuning), "noise": robustness.paired_noise(loaded.runs),
            "tuning": tuning, "pooled": pooled.pooled(loaded.runs)}


def _levels(frame: pd.DataFrame, level: str, order: Any) -> pd.DataFrame:
    """Robustness / few-shot table: method × level averages (×100 on display), drop from clean / gain over the
    smallest size."""
    table = aggregate.by_level(frame, level)
    names = sorted([c for c in table.columns if c not in ("size", "noise", "method")], key=order)
    for name in names[1:]:  # noise: what the noise costs; size: what more data gains
        if level == "noise":
            table[f"drop at {name}"] = table[names[0]] - table[name]
        else:
            table[f"gain at {name}"] = table[name] - table[names[0]]
    return table


def _sections(frames: dict[str, Any], out: Path) -> list[render.Section]:
    cells, summary, runs, tuning, info = (frames[k] for k in ("cells", "summary", "runs", "tuning", "info"))
    blocks = tables.blocks(cells)
    caption = {b: captions.block_caption(runs, tuning, *b, info[b]) for b in blocks}
    sections = [
        render.Section("Main tables", "One table per (few-shot size, noise level).",
                       [tables.main_table(cells, summary, s, n, caption[s, n]) for s, n in blocks]),
        _pooled_section(frames),
        render.Section("Overall: averages, ranks, tests vs STD across tasks",
                       "Friedman / Iman–Davenport and Nemenyi over per-task means; Wilcoxon on per-task mean "
                       "differences to STD (one pair per task); almost stochastic order (ASO) vs STD.",
                       [tables.overall_table(summary, s, n, captions.overall_caption(runs, tuning, s, n, info[s, n]))
                        for s, n in blocks], plots.cd_plot(summary, cells, out) + plots.failure_bars(summary, out)),
        render.Section("Per-task detail", "", [tables.detail_table(cells, s, n, caption[s, n]) for s, n in blocks],
                       plots.task_bars(cells, out)),
    ]
    if cells["noise"].nunique() > 1:
        sections.append(_robustness_section(frames, out))
    if cells["size"].nunique() > 1:
        sections.append(render.Section("Few-shot", "Average over tasks; gain = score at a size − the smallest's.",
                                       [tables.frame_table("fewshot", "metric vs size",
                                                           _levels(cells, "size", size_order),
                                                           note=captions.plain_caption(runs, tuning))],
                                       plots.fewshot_curves(cells, out)))
    sections.append(_cost_section(frames, out))
    sections.append(_tuning_section(frames, out))
    sections += _optional_sections(frames, out)
    return sections


def _pooled_section(frames: dict[str, Any]) -> render.Section:
    frame, runs, tuning = frames["pooled"], frames["runs"], frames["tuning"]
    keys = tables.blocks(frame) if not frame.empty else []
    text = ("Per (size, noise): each method's test score paired with STD's over every (task, seed) where both "
            "exist, all tasks together; exact sign-flip test, Holm over the block's methods.")
    if not keys:
        return render.Section("Pooled comparison vs STD", text + " No block has STD and another method.")
    info = {(s, n): pooled.block_info(frame[(frame["size"] == s) & (frame["noise"] == n)]) for s, n in keys}
    return render.Section("Pooled comparison vs STD", text,
                          [tables.pooled_table(frame, s, n, captions.pooled_caption(runs, tuning, s, n, info[s, n]))
                           for s, n in keys])


def _robustness_section(frames: dict[str, Any], out: Path) -> render.Section:
    cells, runs, tuning = frames["cells"], frames["runs"], frames["tuning"]
    note = captions.plain_caption(runs, tuning)
    paired_table = tables.noise_table(frames["noise"], note)
    average = tables.frame_table("robustness", "metric vs noise level (mean over tasks)",
                                 _levels(cells, "noise", noise_order), note=note)
    return render.Section("Robustness to label noise",
                          "Noisy − clean paired by seed (same method, same seed) with its 95% t-interval; scores "
                          "also shown above the task's chance level (majority-class score), so a method that never "
                          "learned does not look robust. Below: averages over tasks; drop = clean − noisy.",
                          [paired_table, average], plots.noise_curves(cells, out))


def _cost_section(frames: dict[str, Any], out: Path) -> render.Section:
    cost, summary = frames["cost"], frames["summary"]
    cost = cost.assign(cost=cost["cpu_seconds"].fillna(0) + cost["gpu_seconds"].fillna(0))
    cost.loc[cost["cost"] == 0, "cost"] = cost["final_seconds"]
    ranks = summary.groupby("method")["average_rank"].mean().rename("rank").reset_index()
    whole = ("final_runs", "final_seconds", "cells", "trials", "complete", "pruned", "failed", "cpu_seconds",
             "gpu_seconds", "cost")  # counts and seconds: not scores, so not ×100
    seconds = {c: (lambda v: "—" if pd.isna(v) else f"{v:.0f}") for c in whole}
    return render.Section("Tuning cost", "Seconds: tuning trials + final runs (cell summaries).",
                          [tables.frame_table("cost", "cost per method", cost.merge(ranks, on="method"),
                                              {**seconds, "rank": lambda v: f"{v:.2f}"})],
                          plots.rank_cost(cost.merge(ranks, on="method"), out))


def _tuning_section(frames: dict[str, pd.DataFrame], out: Path) -> render.Section:
    best = frames["best"]
    if best.empty:
        return render.Section("Best hyperparameters", "No cell summaries (cells/) were found.")
    compact = {"best_params": lambda d: ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                   for k, v in d.items()),
               "importance": lambda d: ", ".join(f"{k} {v:.2f}" for k, v in d.items()) or "— (omitted)",
               "best_dev": tables.score}
    note = (f"importance: fANOVA, only for cells with ≥ {importance.MIN_TRIALS} finished trials (fewer cannot "
            "separate a parameter's effect from noise); "
            + (f"omitted for {int((best['finished'] < importance.MIN_TRIALS).sum())} of {len(best)} cells"
               if (best["finished"] < importance.MIN_TRIALS).any() else "computed for every cell"))
    return render.Section("Best hyperparameters and their importance (fANOVA)", "",
                          [tables.frame_table("best-params", "best configuration per cell", best, compact, note)],
                          plots.sensitivity(frames["points"], out) if not frames["points"].empty else [])


def _optional_sections(frames: dict[str, pd.DataFrame], out: Path) -> list[render.Section]:
    runs = frames["runs"]
    found = []
    collapse = aggregate.grouped_means(runs, "collapse.", ["size", "noise", "method"])
    if not collapse.empty:
        scatter = plots.collapse_scatter(runs, out)
        found.append(render.Section("Collapse metrics", "Mean over tasks and seeds (raw values, not ×100)."
                                    + (" Plots: each run's collapse metric against its test score." if scatter else ""),
                                    [tables.frame_table("collapse", "collapse", collapse, _raw(collapse))], scatter))
    ood = aggregate.grouped_means(runs, "ood.", ["size", "noise", "task", "method"])
    if not ood.empty:
        found.append(render.Section("Out-of-distribution test sets", "Mean primary metric over seeds, ×100.",
                                    [tables.frame_table("ood", "OOD", ood)]))
    return found


def _raw(frame: pd.DataFrame) -> dict[str, Any]:
    return {c: (lambda v: "—" if pd.isna(v) else f"{v:.4g}") for c in frame.columns if "." in c}


def _filters(cells: pd.DataFrame) -> dict[str, list[str]]:
    return {"size": sorted(cells["size"].unique(), key=size_order),
            "noise": sorted(cells["noise"].unique(), key=noise_order), "family": sorted(cells["family"].unique())}


def build_leaderboard(records_dir: str | Path, out_dir: str | Path, profile: str | None = None, *,
                      cells_dir: str | Path | None = None, command: str | None = None,
                      tracking_uri: str | None = None) -> dict[str, Any]:
    """Write every leaderboard output under ``out_dir``; log them to MLflow when ``tracking_uri`` is given."""
    out = Path(out_dir)
    loaded = load_runs(records_dir)
    profiles = loaded.runs["profile"].dropna().unique()
    profile = profile or (str(profiles[0]) if len(profiles) == 1 else None)  # names the MLflow experiment
    tuning = load_cells(cells_dir, loaded.skipped)
    frames: dict[str, Any] = {**_frames(loaded, tuning), "runs": loaded.runs}
    out.mkdir(parents=True, exist_ok=True)
    for old in sorted((out / plots.PLOTS).glob("*.*")) if (out / plots.PLOTS).is_dir() else []:
        if old.suffix in (".png", ".svg"):
            old.unlink()
    command = command or f"regbench leaderboard --records {records_dir} --out {out_dir}"
    title = f"regbench leaderboard — {profile or 'records in ' + Path(records_dir).name}"
    lines = provenance(loaded, tuning, command)
    sections = _sections(frames, out)
    (out / "leaderboard.md").write_text(render.markdown_document(title, lines, sections))
    (out / "leaderboard.tex").write_text(render.latex_document(title, lines, sections))
    frames["cells"].drop(columns=["differences"]).to_csv(out / "leaderboard.csv", index=False, float_format="%.10g",
                                                         lineterminator="\n")
    frames["summary"].to_csv(out / "leaderboard_overall.csv", index=False, float_format="%.10g", lineterminator="\n")
    (out / "index.html").write_text(html.page(title, lines, sections, _filters(frames["cells"]), out))
    written = [out / name for name in OUTPUTS] + sorted((out / plots.PLOTS).glob("*.*"))
    summary = {"out_dir": str(out), "records": len(loaded.runs), "skipped": loaded.skipped,
               "files": [str(p) for p in written], "mlflow_run_id": None}
    if tracking_uri:
        summary["mlflow_run_id"] = log_to_mlflow(written, out, tracking_uri, profile)
    return summary


def log_to_mlflow(files: list[Path], out: Path, tracking_uri: str, profile: str | None) -> str | None:
    """Mirror the outputs as artifacts of one ``leaderboard`` run (reattached, not duplicated, on regeneration)."""
    from regbench.harness.io import tracking

    experiment = f"regbench-{profile}" if profile else "regbench"
    with tracking.RunTracker(tracking_uri, experiment, "leaderboard", tags={"phase": "leaderboard"},
                             key="leaderboard") as run:
        for path in files:
            parent = path.parent.relative_to(out).as_posix()
            run.log_file_artifact(path, None if parent == "." else parent)
    return run.run_id

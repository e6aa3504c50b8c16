"""Leaderboard plots (matplotlib's object API with the Agg canvas: no pyplot state, no display), PNG + SVG.

Reproducible bytes: PNG and SVG metadata fixed (no date, a fixed creator), ``svg.hashsalt`` fixed so SVG element
ids do not change between runs, text drawn as paths (no font lookup at view time). Each function returns the PNG
paths it wrote, relative to the output directory (the SVG lies beside each PNG).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler

from .loading import noise_order, size_order
from .tables import blocks, file_slugs, method_order, slug, task_order

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "regbench", "svg.fonttype": "path", "font.family": "DejaVu Sans", "font.size": 9,
    "axes.prop_cycle": cycler(color=cast(ListedColormap, mpl.colormaps["tab10"]).colors)}
METADATA = {"png": {"Software": "regbench leaderboard"}, "svg": {"Date": None, "Creator": "regbench leaderboard"}}
PLOTS = "plots"
LINESTYLES = ("-", "--", ":")  # with the 10 colours: up to 30 methods stay distinguishable


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    folder = out_dir / PLOTS
    folder.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with mpl.rc_context(RC):
        for ext in ("png", "svg"):
            fig.savefig(folder / f"{name}.{ext}", format=ext, dpi=100, metadata=METADATA[ext])
    return f"{PLOTS}/{name}.png"


def _grid(count: int, width: float = 3.2, height: float = 2.6) -> tuple[Figure, list[Axes]]:
    cols = min(4, max(1, count))
    rows = math.ceil(count / cols)
    with mpl.rc_context(RC):
        fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def task_bars(cells: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per (size, noise): one panel per task, a bar per method (mean) with its 95% t-interval over seeds."""
    written = []
    for size, noise in blocks(cells):
        block = cells[(cells["size"] == size) & (cells["noise"] == noise)]
        tasks, methods = task_order(block), method_order(block)
        fig, axes = _grid(len(tasks), width=max(3.2, 0.8 + 0.22 * len(methods)))  # room for every bar's label
        with mpl.rc_context(RC):
            for ax, task in zip(axes, tasks):
                rows = block[block["task"] == task].set_index("method").reindex(methods)
                mean = rows["mean"].to_numpy(float)
                err = np.nan_to_num(np.vstack([mean - rows["ci_low"], rows["ci_high"] - mean]).astype(float))
                colors = [f"C{i % 10}" for i in range(len(methods))]
                ax.bar(range(len(methods)), mean, yerr=err, capsize=3, color=colors)
                ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
                _zoom(ax, np.concatenate([rows["ci_low"], rows["ci_high"], mean]).astype(float))
                ax.set_title(task)
                ax.set_ylabel("test primary (95% t-CI)")
            fig.suptitle(f"{size}, {noise}")
        written.append(_save(fig, out_dir, f"bars-{slug(size)}-{slug(noise)}"))
    return written


def _zoom(ax: Axes, values: np.ndarray) -> None:
    """Bars start at the data, not at 0: seed-level differences of a point or two must stay visible."""
    finite = values[np.isfinite(values)]
    if len(finite):
        pad = 0.25 * (finite.max() - finite.min()) + 0.005
        ax.set_ylim(finite.min() - pad, finite.max() + pad)


def _curves(cells: pd.DataFrame, out_dir: Path, level: str, order: Callable[[str], Any], name: str) -> list[str]:
    """One figure per value of the other axis; a panel per task; metric against ``level`` per method. Only tasks
    measured at two or more levels get a panel (a single point is no curve: the bars show it), and a figure with no
    such task is not drawn."""
    other = "size" if level == "noise" else "noise"
    written = []
    for fixed in sorted(cells[other].unique(), key=size_order if other == "size" else noise_order):
        part = cells[(cells[other] == fixed) & np.isfinite(cells["mean"].to_numpy(float))]
        spans = part.groupby("task")[level].nunique()
        part = part[part["task"].isin(spans[spans > 1].index)]
        if part.empty:
            continue
        levels = sorted(part[level].unique(), key=order)
        tasks, methods = task_order(part), method_order(part)
        fig, axes = _grid(len(tasks))
        with mpl.rc_context(RC):
            for ax, task in zip(axes, tasks):
                for i, method in enumerate(methods):
                    rows = part[(part["task"] == task) & (part["method"] == method)].set_index(level).reindex(levels)
                    ax.plot(range(len(levels)), rows["mean"].to_numpy(float), marker="o", color=f"C{i % 10}",
                            linestyle=LINESTYLES[i // 10 % len(LINESTYLES)], label=method)
                ax.set_xticks(range(len(levels)), levels, rotation=30, ha="right")
                ax.set_title(task)
            _legend_below(fig, axes[0], len(methods))
            fig.suptitle(f"{name} ({other} {fixed})")
        written.append(_save(fig, out_dir, f"{slug(name)}-{slug(fixed)}"))
    return written


def _legend_below(fig: Figure, ax: Axes, entries: int) -> None:
    """One legend under the panels, as many columns as the width holds; the figure grows by its rows. (Inside a
    panel, a legend of every registered method is taller than the panel and leaves the plot no room.)"""
    columns = max(1, min(entries, int(fig.get_figwidth() / 1.4)))
    fig.set_figheight(fig.get_figheight() + 0.2 * math.ceil(entries / columns))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns, fontsize=7)


def noise_curves(cells: pd.DataFrame, out_dir: Path) -> list[str]:
    return _curves(cells, out_dir, "noise", noise_order, "noise robustness")


def fewshot_curves(cells: pd.DataFrame, out_dir: Path) -> list[str]:
    return _curves(cells, out_dir, "size", size_order, "few-shot")


def pareto_front(points: pd.DataFrame) -> list[str]:
    """Methods no other method beats on both cost (lower) and average rank (lower)."""
    front, best = [], math.inf
    for row in points.sort_values(["cost", "rank", "method"]).itertuples():
        if row.rank < best:
            front.append(row.method)
            best = row.rank
    return front


def rank_cost(points: pd.DataFrame, out_dir: Path) -> list[str]:
    """Average rank (over every block) against total compute seconds; the Pareto front joined by a line."""
    points = points.dropna(subset=["cost", "rank"])
    if points.empty:
        return []
    front = points.set_index("method").loc[pareto_front(points)].sort_values("cost")
    with mpl.rc_context(RC):
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        ax.scatter(points["cost"], points["rank"], color="C0")
        ax.step(front["cost"], front["rank"], where="post", color="C3", marker="o", label="Pareto front")
        for row in points.itertuples():
            ax.annotate(row.method, (row.cost, row.rank), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("compute seconds (tuning + final runs)")
        ax.set_ylabel("average rank (1 = best)")
        ax.legend()
    return [_save(fig, out_dir, "rank-vs-cost")]


def cd_plot(summary: pd.DataFrame, cells: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per (size, noise): the critical-difference diagram (scikit-posthocs; bars join methods the Nemenyi test
    cannot tell apart at α = 0.05) where a Friedman test is possible, else the average ranks alone."""
    written = []
    for size, noise in blocks(summary):
        block = summary[(summary["size"] == size) & (summary["noise"] == noise)].sort_values(["average_rank", "method"])
        cd = block["cd"].iloc[0]
        with mpl.rc_context(RC):
            fig = Figure(figsize=(7, 1.6 + 0.3 * len(block)), layout="constrained")
            ax = fig.subplots()
            if math.isfinite(cd):
                _diagram(ax, cells, size, noise, cd)
            else:
                _ranks_only(ax, block)
        written.append(_save(fig, out_dir, f"ranks-{slug(size)}-{slug(noise)}"))
    return written


def _diagram(ax: Axes, cells: pd.DataFrame, size: str, noise: str, cd: float) -> None:
    import scikit_posthocs as sp

    from .aggregate import rank_matrix
    from .crossdataset import average_ranks, nemenyi_pvalues

    block = cells[(cells["size"] == size) & (cells["noise"] == noise) & ~cells["exclude_from_average"]]
    matrix = rank_matrix(block, sorted(block["task"].unique()))
    matrix = matrix[sorted(matrix.columns)]  # a fixed column order: the same records draw the same picture
    with _ordered_cliques():
        sp.critical_difference_diagram(average_ranks(matrix), nemenyi_pvalues(matrix), ax=ax, cd=cd,
                                       label_props={"fontsize": 8}, color_palette=["0.2"] * matrix.shape[1])
    ax.set_title(f"{size}, {noise}: average rank over tasks (1 = best), Nemenyi CD = {cd:.2f}", fontsize=9)


@contextlib.contextmanager
def _ordered_cliques() -> Iterator[None]:
    """scikit-posthocs draws each crossbar by iterating a Python ``set`` of method names, whose order follows the
    per-process string hash (PYTHONHASHSEED): the same records drew the bar's points in another order in another
    process, so the SVG differed. Its clique finder (private) is wrapped to hand back sorted lists instead."""
    from scikit_posthocs import _plotting

    find = _plotting._find_maximal_cliques

    def ordered(*args: Any, **kwargs: Any) -> list[list[str]]:
        return sorted((sorted(clique) for clique in find(*args, **kwargs)), key=lambda c: (len(c), c))

    _plotting._find_maximal_cliques = ordered
    try:
        yield
    finally:
        _plotting._find_maximal_cliques = find


def _ranks_only(ax: Axes, block: pd.DataFrame) -> None:
    ranks, names = block["average_rank"].to_numpy(float), list(block["method"])
    ax.set_xlim(0.5, max(len(names), 2) + 0.5)
    ax.set_ylim(-len(names) - 1, 1.0)
    ax.scatter(ranks, np.zeros_like(ranks), color="k", zorder=3)
    for i, (rank, name) in enumerate(zip(ranks, names)):
        ax.plot([rank, rank], [0, -i - 1], color="0.5", lw=0.8)
        ax.text(rank, -i - 1, f" {name} ({rank:.2f})", va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_xlabel("average rank over tasks (1 = best)")
    ax.set_title(f"{block['size'].iloc[0]}, {block['noise'].iloc[0]} (no Friedman test: too few tasks or methods)")


def sensitivity(points: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per method: dev metric of every finished tuning trial against each tuned numeric parameter."""
    written = []
    names = file_slugs(points["method"].unique())
    for method in sorted(points["method"].unique()):
        mine = points[points["method"] == method]
        params = sorted(mine["param"].unique())
        fig, axes = _grid(len(params))
        with mpl.rc_context(RC):
            for ax, param in zip(axes, params):
                for i, (cell, rows) in enumerate(mine[mine["param"] == param].groupby("cell", sort=True)):
                    ax.scatter(rows["value"], rows["dev"], s=12, color=f"C{i % 10}", label=cell)
                values = mine.loc[mine["param"] == param, "value"]
                if values.min() > 0 and values.max() / values.min() > 10:
                    ax.set_xscale("log")
                ax.set_xlabel(param)
                ax.set_ylabel("dev primary")
            if mine["cell"].nunique() <= 8:
                axes[0].legend(fontsize=6)
            fig.suptitle(f"sensitivity: {method}")
        written.append(_save(fig, out_dir, f"sensitivity-{names[method]}"))
    return written


def failure_bars(summary: pd.DataFrame, out_dir: Path) -> list[str]:
    """Failure rate (failed + diverged runs ÷ runs, the Overall table's column) per method, one panel per block."""
    keys = blocks(summary)
    if not keys:
        return []
    methods = method_order(summary)
    fig, axes = _grid(len(keys), width=max(4.4, 0.8 + 0.3 * len(methods)))  # room for the title and labels
    with mpl.rc_context(RC):
        for ax, (size, noise) in zip(axes, keys):
            rows = summary[(summary["size"] == size) & (summary["noise"] == noise)].set_index("method")
            rate = 100 * rows["failure_rate"].reindex(methods).to_numpy(float)
            ax.bar(range(len(methods)), np.nan_to_num(rate), color=[f"C{i % 10}" for i in range(len(methods))])
            for i, value in enumerate(rate):  # the number, so a 0% bar is read as "none", not "missing"
                ax.text(i, np.nan_to_num(value), "—" if np.isnan(value) else f"{value:.0f}%", ha="center",
                        va="bottom", fontsize=7)
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
            ax.set_ylim(0, max(10.0, float(np.nanmax(rate, initial=0.0))) * 1.15)
            ax.set_ylabel("failed or diverged runs (%)")
            ax.set_title(f"{size}, {noise}")
        fig.suptitle("failure rate per method (tasks in averages)")
    return [_save(fig, out_dir, "failure-rate")]


# Collapse columns that describe the fine-tuned model. Left out: probe_rows (a count), the pretrained encoder's own
# values (the same for every method) and probe_transfer_finetuned (= probe_transfer_delta + that constant).
COLLAPSE_SKIP = ("collapse.probe_rows", "collapse.pretrained_", "collapse.probe_transfer_pretrained",
                 "collapse.probe_transfer_finetuned")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def collapse_metrics(runs: pd.DataFrame) -> list[str]:
    return sorted(c for c in runs.columns if c.startswith("collapse.") and not c.startswith(COLLAPSE_SKIP)
                  and np.isfinite(runs[c].to_numpy(float)).any())


def collapse_scatter(runs: pd.DataFrame, out_dir: Path) -> list[str]:
    """Per block: one panel per collapse metric present, each run a point (metric vs test primary); colour =
    method, marker = task. Nothing when no record carries collapse metrics."""
    written = []
    for size, noise in blocks(runs):
        block = runs[(runs["size"] == size) & (runs["noise"] == noise)]
        metrics = collapse_metrics(block)
        if not metrics:
            continue
        methods, tasks = method_order(block), sorted(block["task"].unique())
        fig, axes = _grid(len(metrics))
        with mpl.rc_context(RC):
            for ax, metric in zip(axes, metrics):
                for i, method in enumerate(methods):
                    for j, task in enumerate(tasks):
                        rows = block[(block["method"] == method) & (block["task"] == task)]
                        ax.scatter(rows[metric].to_numpy(float), rows["primary"].to_numpy(float), s=14,
                                   color=f"C{i % 10}", marker=MARKERS[j % len(MARKERS)])
                ax.set_xlabel(metric.removeprefix("collapse."))
                ax.set_ylabel("test primary")
            _key_below(fig, axes[0], methods, tasks)
            fig.suptitle(f"collapse metrics vs test score, {size}, {noise} (one point per run)")
        written.append(_save(fig, out_dir, f"collapse-{slug(size)}-{slug(noise)}"))
    return written


def _key_below(fig: Figure, ax: Axes, methods: list[str], tasks: list[str]) -> None:
    """The legend: methods by colour, tasks by marker (proxy artists, one entry each, not one per scatter call)."""
    for i, method in enumerate(methods):
        ax.plot([], [], linestyle="", marker="o", color=f"C{i % 10}", label=method)
    for j, task in enumerate(tasks):
        ax.plot([], [], linestyle="", marker=MARKERS[j % len(MARKERS)], color="0.4", label=task)
    _legend_below(fig, ax, len(methods) + len(tasks))

"""Leaderboards from result records: ``build_leaderboard(records_dir, out_dir, profile)`` (see build.py).

Modules, one concern each: loading (records → DataFrame), stats (tests, intervals, power), paired (per-cell
comparisons with STD, the table's Holm family and MDE), pooled (every (task, seed) pair of a block vs STD, Holm over
its methods, the pooled MDE), intervals (two-level bootstrap of Δ; task-stratified for the pooled Δ), crossdataset
(Friedman / Iman–Davenport, Nemenyi, Wilcoxon on task means, ASO), robustness (noisy − clean paired by seed, chance
level), aggregate (per-cell and overall statistics), captions (what every table caption states), importance (best
hyperparameters, fANOVA), tables (format-neutral tables), render (Markdown, LaTeX), plots (matplotlib), html (the
static page), build (the pipeline and the MLflow mirror); reproduction (the seed papers' claims as paired tests and
the verdict rule), reproduction_claims (the declared claims), reproduction_doc and reproduction_setting
(results/REPRODUCTION.md: `regbench reproduction`).
"""

from typing import Any


def __getattr__(name: str) -> Any:
    """``build_leaderboard`` on first use: the CLI imports this package for its sub-command's parser, and pandas,
    scipy and matplotlib should not load for ``regbench --help``."""
    if name == "build_leaderboard":
        from .build import build_leaderboard

        return build_leaderboard
    raise AttributeError(name)

__all__ = ["build_leaderboard"]

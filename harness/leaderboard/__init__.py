"""Leaderboards from result records: ``build_leaderboard(records_dir, out_dir, profile)`` (see build.py).

Modules, one concern each: loading (records → DataFrame), stats (tests), aggregate (per-cell and overall
statistics), importance (best hyperparameters, fANOVA), tables (format-neutral tables), render (Markdown, LaTeX),
plots (matplotlib), html (the static page), build (the pipeline and the MLflow mirror).
"""

from .build import build_leaderboard

__all__ = ["build_leaderboard"]

"""regbench: a benchmark suite and reproducibility harness for regularizers used when fine-tuning pretrained
language models. The code lives in four sub-packages mapped from the repository's top-level folders (pyproject.toml):
``regbench.harness`` (loop, grid, records, leaderboard, CLI), ``regbench.benchmarks`` (tasks, data, metrics, perf),
``regbench.regularizers`` (REPINA, MVCR) and ``regbench.baselines``. This file only gives the package its version."""

from regbench.harness.core.version import __version__

__all__ = ["__version__"]

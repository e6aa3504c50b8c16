"""regbench's version, from one place: ``[project] version`` in pyproject.toml.

An installed regbench (editable too) reads it back from the distribution's metadata; a source tree that was never
installed (``PYTHONPATH`` onto a checkout, as the mutation session does) reads pyproject.toml beside the sources.
Records store it (``meta_info.regbench_version``); ``regbench.harness.core.version.__version__`` is the same string.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def package_version(package: str) -> str | None:
    """The installed version of a distribution, or None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _source_version() -> str | None:
    """``[project] version`` of the pyproject.toml beside these sources (None for a copy that ships without one)."""
    try:
        with PYPROJECT.open("rb") as handle:
            project = tomllib.load(handle).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return project.get("version") if project.get("name") == "regbench" else None


def regbench_version() -> str:
    """regbench's version: the installed distribution's, else the source tree's, else ``"unknown"``."""
    return package_version("regbench") or _source_version() or "unknown"


__version__ = regbench_version()

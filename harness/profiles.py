"""Benchmark profiles (``benchmarks/profiles/<name>.yaml``): which grid to run and at what size."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import yaml


def profiles_dir() -> Path:
    return Path(str(importlib.resources.files("regbench.benchmarks") / "profiles"))


def list_profiles() -> list[tuple[str, str]]:
    """(name, one-line description) of every profile shipped with regbench."""
    out = []
    for path in sorted(profiles_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        out.append((path.stem, str(data.get("description", ""))))
    return out

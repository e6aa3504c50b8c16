"""A profile's ``blocks``: a grid that is a union of sub-grids instead of the full task × size × noise product.

Issue 20's small grid runs every task clean at one size but label noise and the few-shot size only on two sentence
tasks; the full product would spend the budget on blocks nobody asked for. ``blocks`` lists sub-grids, each with
``tasks``, ``sizes`` and ``noise`` (any of them omitted = the profile's whole list); a (task, size, noise) block runs
when some sub-grid contains it. Without ``blocks`` every combination runs, as before. Which blocks run never changes
a cell's key (cells.py hashes the resolved cell, not the profile's shape), so records stay valid when a profile
gains or loses a sub-grid.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import ConfigError

Combination = tuple[str, str, float]  # (task, canonical size label, noise rate)


def parse_blocks(value: Any, tasks: tuple[str, ...], sizes: tuple[Any, ...], noise: tuple[float, ...],
                 where: str) -> tuple[Combination, ...]:
    """The (task, size label, noise) combinations the sub-grids name; each value must be in the profile's lists."""
    from regbench.benchmarks.fewshot import parse_size

    if not isinstance(value, list) or not value or not all(isinstance(b, dict) for b in value):
        raise ConfigError(f"{where}: blocks must be a non-empty list of {{tasks, sizes, noise}} mappings, "
                          f"got {value!r}")
    whole: dict[str, list[Any]] = {"tasks": list(tasks), "sizes": [parse_size(s).label for s in sizes],
                                   "noise": [float(n) for n in noise]}
    found: list[Combination] = []
    for number, block in enumerate(value, 1):
        unknown = sorted(set(block) - set(whole))
        if unknown:
            raise ConfigError(f"{where}: blocks[{number}] has unknown key {unknown[0]!r} (known: tasks, sizes, noise)")
        chosen = {key: _values(block.get(key, whole[key]), key, whole[key], f"{where}: blocks[{number}]")
                  for key in whole}
        found += [(t, s, n) for t in chosen["tasks"] for s in chosen["sizes"] for n in chosen["noise"]
                  if (t, s, n) not in found]
    return tuple(found)


def _values(raw: Any, key: str, allowed: list[Any], where: str) -> list[Any]:
    from regbench.benchmarks.fewshot import parse_size

    items = raw if isinstance(raw, list) else [raw]
    try:
        values = [parse_size(v).label if key == "sizes" else float(v) if key == "noise" else v for v in items]
    except (TypeError, ValueError):
        values = items
    outside = [v for v in values if v not in allowed]
    if not values or outside:
        raise ConfigError(f"{where}.{key} must list values from the profile's {key} {allowed}, got "
                          f"{outside[0] if outside else raw!r}")
    return values


def includes(profile: Any, task: str, size_label: str, noise: float) -> bool:
    """Whether the profile runs this (task, size, noise) block."""
    return not profile.blocks or (task, size_label, float(noise)) in profile.blocks

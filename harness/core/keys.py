"""The keys that name runs, cells and blocks: hashes of a run's resolved configuration (``api.describe``).

They are a contract: every committed record, cell summary, Optuna study and MLflow run is found by them, so a change
here orphans every committed grid (tests/test_contract.py pins them). One definition each:

- run key: the whole configuration, seed included — one final run or trial configuration.
- cell key: without the seed. In a grid (``search_space`` given) also without the learning rate, which trials vary,
  and with the search space and the data files' content hashes: topping up a study, another seed, or the same data
  under another directory keeps the cell.
- block key: a grid cell's key without the method: what every method of a (task, size, noise) block shares; the
  common-random-number start of every method's trials is drawn from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def digest(obj: Any) -> str:
    """16 hex digits of the SHA-256 of ``obj`` as sorted-key JSON (non-JSON values by their ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(described: Mapping[str, Any]) -> str:
    return digest(described)


def cell_key(described: Mapping[str, Any], search_space: Mapping[str, Any] | None = None,
             data_files: list[str] | None = None) -> str:
    key = _without(described, "seed")
    if search_space is not None:
        key["train"] = _without(key["train"], "lr")
        key["search_space"] = {name: repr(distribution) for name, distribution in sorted(search_space.items())}
    if data_files is not None:
        key["data_files"] = data_files
    return digest(key)


def block_key(described: Mapping[str, Any], data_files: list[str]) -> str:
    key = _without(described, "seed", "method")
    key["train"] = _without(key["train"], "lr")
    key["data_files"] = data_files
    return digest(key)


def _without(mapping: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in names}

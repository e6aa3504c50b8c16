"""Label noise for the robustness axis of the grid: applied to train and dev only, the test set stays clean.

Rules (rate ``r`` in [0, 1), drawn from the run's own noise seed, so every method sees the same noisy labels):

- **Classification, symmetric**: exactly ``round(r · n)`` examples, chosen uniformly, get a label drawn uniformly
  from the *other* classes. An exact count (not a Bernoulli draw per example) makes a 32-example few-shot set
  realise the rate it was asked for instead of anything between 3% and 40%.
- **Classification, asymmetric**: the task YAML gives a class-conditional flip map (``noise: {flip_map: {2: 1, 3:
  4}}``, label id → label id, e.g. TREC/Yelp-style neighbouring classes); for each source class exactly
  ``round(r · n_class)`` of its examples move to their mapped class. Classes outside the map are untouched, so the
  realised overall rate is below ``r`` unless every class is mapped.
- **Token classification**: noise acts on entity *spans*, not tokens: ``round(r · n_spans)`` spans get another
  entity type (uniform over the other types) on every one of their tags, so B-/I- structure stays valid IOB2.
  Asymmetric maps name entity types (``{ORG: LOC}``).
- **Regression**: every label gets Gaussian noise with std ``r · std(labels)`` (std of the set being noised); the
  realised rate reported is the empirical std of the added noise divided by the label std.

``apply_noise`` returns new feature dicts (the cached encoded data is never mutated) and a summary for the record:
realised rate and a sha256 of the ids that were changed, so two records can be checked for the same noise draw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from regbench.harness.core.errors import ConfigError

from .taskspec import TaskSpec

NOISE_TYPES = ("symmetric", "asymmetric")


@dataclass(frozen=True)
class NoiseSpec:
    rate: float = 0.0
    type: str = "symmetric"

    def validate(self) -> None:
        if not (0.0 <= self.rate < 1.0):
            raise ConfigError(f"label-noise rate must be in [0, 1), got {self.rate}")
        if self.type not in NOISE_TYPES:
            raise ConfigError(f"label-noise type must be one of {', '.join(NOISE_TYPES)}, got {self.type!r}")

    def label(self) -> str:
        return "clean" if self.rate == 0 else f"{self.type[:3]}{self.rate:g}"


def check_task_supports(task: TaskSpec, spec: NoiseSpec) -> None:
    """Fail before any run when a task cannot take this noise (asymmetric noise needs the task's flip map)."""
    spec.validate()
    if spec.rate > 0 and spec.type == "asymmetric":
        flip_map(task)
    if spec.rate > 0 and task.type == "classification" and task.num_labels < 2:
        raise ConfigError(f"task {task.name!r} has {task.num_labels} class; label noise needs at least 2")


def flip_map(task: TaskSpec) -> dict[Any, Any]:
    """The asymmetric flip map of a task YAML, validated (label ids for classification, entity types for tokens)."""
    raw = (task.extra.get("noise") or {}).get("flip_map") if isinstance(task.extra.get("noise"), Mapping) else None
    if not raw:
        raise ConfigError(f"task {task.name!r} ({task.path}) has no noise.flip_map, which asymmetric noise needs; "
                          "add e.g. `noise: {flip_map: {0: 1}}` or use symmetric noise")
    valid = set(_entity_types(task)) if task.is_token_task else set(range(task.num_labels))
    for source, target in raw.items():
        if source not in valid or target not in valid or source == target:
            raise ConfigError(f"task {task.name!r} ({task.path}): noise.flip_map entry {source!r}: {target!r} must map "
                              f"one of {sorted(valid, key=str)} to a different one")
    return dict(raw)


def apply_noise(task: TaskSpec, features: Sequence[dict[str, Any]], spec: NoiseSpec, seed: int
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Noisy copies of ``features`` (same order) and a summary: realised rate, changed ids and their hash."""
    spec.validate()
    if spec.rate == 0 or not features:
        return list(features), _summary(spec, 0.0, [])
    rng = np.random.default_rng(seed)
    if task.is_regression:
        return _regression(features, spec, rng)
    if task.is_token_task:
        return _token(task, features, spec, rng)
    return _classification(task, features, spec, rng)


def _classification(task: TaskSpec, features: Sequence[dict[str, Any]], spec: NoiseSpec, rng: np.random.Generator):
    labels = [f["labels"] for f in features]
    new = list(labels)
    if spec.type == "symmetric":
        for i in _choose(rng, range(len(labels)), spec.rate):
            others = [c for c in range(task.num_labels) if c != labels[i]]
            new[i] = int(rng.choice(others))
    else:
        for source, target in sorted(flip_map(task).items()):
            for i in _choose(rng, [i for i, y in enumerate(labels) if y == source], spec.rate):
                new[i] = target
    changed = [i for i in range(len(labels)) if new[i] != labels[i]]
    out = [dict(f, labels=y) if y != f["labels"] else f for f, y in zip(features, new, strict=True)]
    return out, _summary(spec, len(changed) / len(labels), [features[i]["idx"] for i in changed])


def _regression(features: Sequence[dict[str, Any]], spec: NoiseSpec, rng: np.random.Generator):
    labels = np.asarray([f["labels"] for f in features], dtype=np.float64)
    scale = float(labels.std()) if len(labels) > 1 else 0.0
    noise = rng.normal(0.0, spec.rate * scale, size=len(labels)) if scale > 0 else np.zeros(len(labels))
    out = [dict(f, labels=float(y + e)) for f, y, e in zip(features, labels, noise, strict=True)]
    realised = float(noise.std() / scale) if scale > 0 else 0.0
    return out, _summary(spec, realised, [f["idx"] for f in features] if scale > 0 else [], kind="gaussian")


def _token(task: TaskSpec, features: Sequence[dict[str, Any]], spec: NoiseSpec, rng: np.random.Generator):
    types = _entity_types(task)
    spans = [(n, span) for n, f in enumerate(features) for span in _spans(f["labels"], task.label_names)]
    if not spans or len(types) < 2:
        return list(features), _summary(spec, 0.0, [])
    if spec.type == "symmetric":
        picked = {spans[i]: str(rng.choice([t for t in types if t != spans[i][1][2]]))
                  for i in _choose(rng, range(len(spans)), spec.rate)}
    else:
        mapping = flip_map(task)
        picked = {}
        for source, target in sorted(mapping.items()):
            for i in _choose(rng, [i for i, (_, s) in enumerate(spans) if s[2] == source], spec.rate):
                picked[spans[i]] = target
    tags = [list(f["labels"]) for f in features]
    index = {name: i for i, name in enumerate(task.label_names)}
    for (n, (start, end, _kind)), new_type in picked.items():
        for pos in range(start, end):
            if tags[n][pos] == -100:  # a later sub-token or a special token: not labelled
                continue
            prefix = task.label_names[tags[n][pos]].split("-", 1)[0]
            tags[n][pos] = index[f"{prefix}-{new_type}"]
    changed = sorted({n for n, _ in picked})
    changed_set = set(changed)
    out = [dict(f, labels=tags[n]) if n in changed_set else f for n, f in enumerate(features)]
    return out, _summary(spec, len(picked) / len(spans), [features[n]["idx"] for n in changed], unit="spans")


def _entity_types(task: TaskSpec) -> list[str]:
    return sorted({name.split("-", 1)[1] for name in task.label_names if "-" in name})


def _spans(tags: Sequence[int], names: Sequence[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each entity in a label row; positions with -100 (sub-tokens, specials) are skipped."""
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    kind, last = "", -1
    for pos, tag in enumerate(tags):
        if tag == -100:
            continue
        name = names[tag]
        inside = name.startswith("I-") and kind == name[2:]
        if start is not None and not inside:
            spans.append((start, last + 1, kind))
            start, kind = None, ""
        if name.startswith("B-") or (name.startswith("I-") and not inside):
            start, kind = pos, name[2:]
        last = pos
    if start is not None:
        spans.append((start, last + 1, kind))
    return spans


def _choose(rng: np.random.Generator, candidates: Sequence[int] | range, rate: float) -> list[int]:
    candidates = list(candidates)
    count = int(round(rate * len(candidates)))
    return sorted(int(i) for i in rng.choice(candidates, size=count, replace=False)) if count else []


def _summary(spec: NoiseSpec, realised: float, changed_ids: list[int], kind: str | None = None,
             unit: str = "examples") -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(sorted(int(i) for i in changed_ids)).encode()).hexdigest()[:16]
    return {"type": kind or (spec.type if spec.rate > 0 else "none"), "rate": spec.rate, "realised_rate": realised,
            "unit": unit, "changed": len(changed_ids), "flipped_sha256": digest}

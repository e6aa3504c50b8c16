"""Out-of-distribution evaluation: the selected checkpoint scored on other tasks' test sets (compatible labels).

A task YAML names its OOD sets under ``ood`` (format: ``benchmarks/tasks/README.md``)::

    ood:
      yelp_polarity: {task: yelp5, split: test, label_map: {0: 0, 1: 0, 2: null, 3: 1, 4: 1}}

Each entry reuses another task's YAML (its data, columns and tokenisation), maps that task's gold label ids into this
task's label space (``label_map``; ``null`` drops the example, e.g. 3-star reviews; without a map the ids must
already match) and scores the model's predictions with *this* task's metrics. ``prediction_map`` maps this task's
predicted ids before scoring, for labels the OOD set does not annotate (CoNLL's MISC → O on WikiANN). Token tasks
map every tag and may not drop any. Design choices (ours): an OOD example whose token ids equal a training or dev
example of the run is removed (never evaluate on anything trained on; the count is recorded), and large sets are
capped at a fixed stratified subsample (seed 0, the cap is recorded) so a final run stays cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from regbench.benchmarks.data import content_key, encode_split, load_split
from regbench.benchmarks.fewshot import stratified_subsample
from regbench.benchmarks.taskspec import TaskSpec, get_task

from ..core.errors import ConfigError, DataError
from ..run import batching
from ..run.evaluation import predict, score
from ..run.model import TaskModel


def ood_task(task: TaskSpec, name: str) -> TaskSpec:
    """The task an OOD entry points at, checked for a matching type."""
    spec = task.ood[name]
    other = get_task(spec["task"])
    if other.type != task.type:
        raise ConfigError(f"task file {task.path}: ood.{name} uses task {other.name!r} of type {other.type}, "
                          f"but {task.name} is {task.type}")
    if spec["split"] not in other.splits:
        raise ConfigError(f"task file {task.path}: ood.{name}.split {spec['split']!r} is not a split of "
                          f"{other.name} (it has: {', '.join(other.splits)})")
    return other


def map_label(task: TaskSpec, name: str, label: Any) -> Any:
    """An OOD gold label (or tag sequence) in this task's label space; None = drop the example."""
    mapping: Mapping[int, int | None] | None = task.ood[name].get("label_map")
    if task.is_regression:
        return label
    if task.is_token_task:
        return [_map_one(task, name, mapping, tag, allow_drop=False) if tag != batching.PAD_LABEL else tag
                for tag in label]
    return _map_one(task, name, mapping, label, allow_drop=True)


def _map_one(task: TaskSpec, name: str, mapping: Mapping[int, int | None] | None, label: int, allow_drop: bool) -> Any:
    target: int | None
    if mapping is None:
        target = label
    elif label in mapping:
        target = mapping[label]
    else:
        raise DataError(f"task file {task.path}: ood.{name}.label_map has no entry for label {label!r}")
    if target is None and not allow_drop:
        raise DataError(f"task file {task.path}: ood.{name}.label_map drops tag {label!r}; "
                        "token tasks must map every tag")
    if target is not None and not (isinstance(target, int) and 0 <= target < task.num_labels):
        raise DataError(f"task file {task.path}: ood.{name} label {label!r} maps to {target!r}, "
                        f"outside 0..{task.num_labels - 1}")
    return target


def check_ood(task: TaskSpec, data_dir: str | Path | None = None) -> str:
    """For ``regbench validate``: every OOD set loads and every gold label maps; a summary line."""
    parts = []
    for name in task.ood:
        other = ood_task(task, name)
        labels = load_split(other, task.ood[name]["split"], data_dir).dataset[other.label_column]
        kept = sum(map_label(task, name, y) is not None for y in labels)
        parts.append(f"{name} {kept}")
    return "ood: " + ", ".join(parts) if parts else ""


def ood_features(task: TaskSpec, name: str, tokenizer: Any, max_length: int, data_dir: str | Path | None,
                 exclude: set[tuple[Any, ...]], max_examples: int | None,
                 ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """The tokenized OOD set with mapped labels, minus training overlap, capped; and the counts to record."""
    other = ood_task(task, name)
    encoded = encode_split(other, task.ood[name]["split"], tokenizer, max_length, data_dir)
    features, dropped, overlap = [], 0, 0
    for feature in encoded.features:
        label = map_label(task, name, feature["labels"])
        if label is None:
            dropped += 1
        elif content_key(feature) in exclude:
            overlap += 1
        else:
            features.append({**feature, "labels": label})
    if max_examples and len(features) > max_examples:
        keep = stratified_subsample(task, [f["labels"] for f in features], max_examples, seed=0)
        features = [features[i] for i in keep]
    info = {"examples": float(len(features)), "dropped_unmapped": float(dropped),
            "excluded_train_overlap": float(overlap), "cap": float(max_examples or 0)}
    return features, info


def _apply_prediction_map(task: TaskSpec, name: str, preds: list[Any]) -> list[Any]:
    mapping = task.ood[name].get("prediction_map")
    if not mapping:
        return preds
    if task.is_token_task:
        return [[mapping.get(t, t) for t in seq] for seq in preds]
    return [mapping.get(p, p) for p in preds]


def evaluate_ood(model: TaskModel, task: TaskSpec, tokenizer: Any, max_length: int,
                 data_dir: str | Path | None = None, *, exclude: Iterable[dict[str, Any]] = (),
                 max_examples: int | None = 1000, batch_size: int = 64,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 ) -> dict[str, dict[str, float]]:
    """Score ``model`` on each OOD set of ``task``: ``{name: {metric: value, ..., examples, ...}}``.

    ``exclude``: the run's training and dev features; OOD examples with the same token ids are left out."""
    seen = {content_key(f) for f in exclude}
    device = next(model.parameters()).device
    results = {}
    for name in task.ood:
        features, info = ood_features(task, name, tokenizer, max_length, data_dir, seen, max_examples)
        if not features:
            results[name] = info
            continue
        order = batching.eval_order([len(f["input_ids"]) for f in features], batch_size)
        batches = batching.iterate(features, order, tokenizer.pad_token_id, device)
        _, preds, refs = predict(model, batches, autocast)
        results[name] = {**score(task, _apply_prediction_map(task, name, preds), refs), **info}
    return results

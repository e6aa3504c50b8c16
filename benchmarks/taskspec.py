"""Task specifications: one YAML file per task (``benchmarks/tasks/<name>.yaml``), with a ``version``.

A task says where its data lives (the Parquet mirror path and/or a hub dataset name), which columns hold the text
and the label, how train/dev/test are formed, which metrics it reports and which of them is *primary* (the score
used for tuning, epoch selection and ranking; several names are averaged, e.g. Pearson and Spearman for STS-B).
Adding a task is one YAML file; see ``benchmarks/tasks/README.md``. Bump ``version`` whenever a change could alter
results: the version is part of every cell key, so old and new records never mix.
"""

from __future__ import annotations

import importlib.resources
import os
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regbench.harness.core import yamlio
from regbench.harness.core.errors import ConfigError
from regbench.harness.core.registry import Registry

# The keys each metric returns (the metric table's): the primary metric must name one of them.
from .metrics import METRIC_OUTPUTS

# The task types the model has heads for (harness.run.model builds one per type).
TASK_TYPES = ("classification", "regression", "token_classification", "multiple_choice")
REQUIRED_KEYS = ("name", "version", "type", "source", "splits", "label_column", "metrics", "primary")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    version: int
    type: str
    source: dict[str, Any]  # mirror: "<dataset>/<config>" under the data dir; hub: [name, config] when online
    splits: dict[str, Any]  # train: the pool (dev is carved from it); test. A name, or {split, mirror, hub}
    label_column: str
    metrics: tuple[str, ...]
    primary: tuple[str, ...]
    text_columns: tuple[str, ...] = ()
    tokens_column: str | None = None
    num_labels: int = 1
    label_names: tuple[str, ...] = ()
    description: str = ""
    family: str = ""
    notes: str = ""
    path: str = ""  # the YAML file it came from
    choice_columns: tuple[str, ...] = ()  # multiple_choice: one column per answer; each is paired with the context
    text_templates: tuple[str, ...] = ()  # optional: one format string per text segment, over the row's columns
    mark_spans: dict[str, tuple[str, str]] = field(default_factory=dict)  # text column → (start, end) columns
    resplit: dict[str, Any] | None = None  # {test_fraction, seed}: cut one source split into pool + test parts
    ood: dict[str, dict[str, Any]] = field(default_factory=dict)  # OOD test sets (harness/post/ood.py)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_token_task(self) -> bool:
        return self.type == "token_classification"

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"

    @property
    def is_multiple_choice(self) -> bool:
        return self.type == "multiple_choice"

    def input_columns(self) -> list[str]:
        """Every column the inputs are built from (templates may name columns not in ``text_columns``)."""
        if self.is_token_task:
            return [self.tokens_column or ""]
        names = [*self.text_columns, *self.choice_columns]
        names += [f for t in self.text_templates for f in template_fields(t)]
        names += [c for pair in self.mark_spans.values() for c in pair]
        return list(dict.fromkeys(names))

    def key(self) -> dict[str, Any]:
        """What identifies this task's results (goes into cell keys and records)."""
        return {"name": self.name, "version": self.version}


def parse_task(data: dict[str, Any], path: str = "<memory>") -> TaskSpec:
    """Build a TaskSpec from parsed YAML, failing with one line that names the file and the problem."""
    where = f"task file {path}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a YAML mapping, got {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{where} is missing required key {missing[0]!r} (required: {', '.join(REQUIRED_KEYS)})")
    if data["type"] not in TASK_TYPES:
        raise ConfigError(f"{where}: type {data['type']!r} is not one of {', '.join(TASK_TYPES)}")
    if not isinstance(data["version"], int) or isinstance(data["version"], bool):
        raise ConfigError(f"{where}: version must be an integer, got {data['version']!r}")
    _check_splits(data, where)
    _check_columns(data, where)
    _check_types(data, where)
    metrics = tuple(_as_list(data["metrics"]))
    for metric in metrics:
        if metric not in METRIC_OUTPUTS:
            raise ConfigError(f"{where}: unknown metric {metric!r} (known: {', '.join(METRIC_OUTPUTS)})")
    outputs = {key for metric in metrics for key in METRIC_OUTPUTS[metric]}
    primary = tuple(_as_list(data["primary"]))
    for key in primary:
        if key not in outputs:
            known_outputs = ", ".join(sorted(outputs))
            raise ConfigError(f"{where}: primary {key!r} is not an output of its metrics (outputs: {known_outputs})")
    known = {f for f in TaskSpec.__dataclass_fields__}
    extra = {k: v for k, v in data.items() if k not in known}
    label_names = tuple(data.get("label_names") or ())
    choices = tuple(_as_list(data.get("choice_columns") or ()))
    num_labels = len(choices) if choices else int(data.get("num_labels") or len(label_names) or 1)
    _check_inputs(data, where)
    _check_resplit(data, where)
    ood = _check_ood(data, where)
    return TaskSpec(
        name=str(data["name"]), version=data["version"], type=data["type"], source=dict(data["source"]),
        splits=dict(data["splits"]), label_column=str(data["label_column"]), metrics=metrics, primary=primary,
        text_columns=tuple(_as_list(data.get("text_columns") or ())), tokens_column=data.get("tokens_column"),
        num_labels=num_labels, label_names=label_names, description=str(data.get("description", "")),
        family=str(data.get("family", "")), notes=str(data.get("notes", "")), path=path, choice_columns=choices,
        text_templates=tuple(_as_list(data.get("text_templates") or ())),
        mark_spans={k: tuple(v) for k, v in (data.get("mark_spans") or {}).items()},
        resplit=dict(data["resplit"]) if data.get("resplit") else None, ood=ood, extra=extra,
    )


def _names(v: Any) -> bool:
    return all(isinstance(x, str) and x for x in _as_list(v))


# What each key's value must be, checked before it is used: a wrong type is one line naming the key, never a
# TypeError (an unhashable metric name) or ValueError (num_labels: "two") from the code that reads it.
TYPES: dict[str, tuple[Any, str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "label_column": (lambda v: isinstance(v, str) and bool(v), "a column name"),
    "metrics": (_names, "metric names"),
    "primary": (_names, "metric output names"),
    "text_columns": (lambda v: v is None or _names(v), "one or two column names"),
    "tokens_column": (lambda v: v is None or isinstance(v, str), "a column name"),
    "label_names": (lambda v: v is None or (isinstance(v, list) and _names(v)), "a list of label names"),
    "choice_columns": (lambda v: v is None or (isinstance(v, list) and _names(v)), "a list of column names"),
    "num_labels": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                   "an integer ≥ 1"),
    "source": (lambda v: isinstance(v, dict) and all(isinstance(v.get(k), str | list | None) for k in ("mirror", "hub"))
               and (v.get("mirror") is None or isinstance(v["mirror"], str)), "{mirror: dir, hub: name}"),
}


def _check_types(data: dict[str, Any], where: str) -> None:
    for key, (accepts, expected) in TYPES.items():
        if key in data and not accepts(data[key]):
            raise ConfigError(f"{where}: {key} must be {expected}, got {data[key]!r}")
    for key, entry in (data["splits"] if isinstance(data["splits"], dict) else {}).items():
        names = [entry] if not isinstance(entry, dict) else [entry.get("split"), entry.get("mirror", "")]
        if not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}: splits.{key} must be a split name or {{split, mirror, hub}}, got {entry!r}")


def template_fields(template: str) -> list[str]:
    """The columns a ``text_templates`` entry uses (``"{premise} What was the {question}?"`` → premise, question)."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _check_inputs(data: dict[str, Any], where: str) -> None:
    """Multiple-choice columns, text templates and span markers (see benchmarks/tasks/README.md)."""
    choices = data.get("choice_columns")
    if data["type"] == "multiple_choice" and (not isinstance(choices, list) or len(choices) < 2):
        raise ConfigError(f"{where}: a multiple_choice task needs 'choice_columns' listing at least two answer columns")
    templates = data.get("text_templates")
    if templates is not None:
        limit = 1 if data["type"] == "multiple_choice" else 2
        if not (isinstance(templates, list) and 1 <= len(templates) <= limit
                and all(isinstance(t, str) for t in templates)):
            raise ConfigError(f"{where}: 'text_templates' must list 1..{limit} format strings (one per text segment)")
        for template in templates:
            try:
                template_fields(template)
            except ValueError as err:
                raise ConfigError(f"{where}: text_templates entry {template!r} is not a format string: {err}") from None
    spans = data.get("mark_spans") or {}
    if not isinstance(spans, dict):
        raise ConfigError(f"{where}: 'mark_spans' must map a text column to [start column, end column]")
    for column, pair in spans.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{where}: mark_spans.{column} must be [start column, end column], got {pair!r}")
        if column not in _as_list(data.get("text_columns") or ()):
            raise ConfigError(f"{where}: mark_spans names {column!r}, which is not one of text_columns")


def _check_resplit(data: dict[str, Any], where: str) -> None:
    parts = {key: entry["part"] for key, entry in data["splits"].items() if isinstance(entry, dict) and "part" in entry}
    resplit = data.get("resplit")
    if resplit is not None and not isinstance(resplit, dict):
        raise ConfigError(f"{where}: resplit must be a mapping {{test_fraction, seed}}, got {resplit!r}")
    if parts and not isinstance(resplit, dict):
        raise ConfigError(f"{where}: splits use 'part' but the task has no 'resplit: {{test_fraction, seed}}'")
    for key, part in parts.items():
        if part not in ("pool", "test"):
            raise ConfigError(f"{where}: splits.{key}.part must be 'pool' or 'test', got {part!r}")
    if resplit is not None:
        fraction, seed = resplit.get("test_fraction"), resplit.get("seed")
        if not (isinstance(fraction, float) and 0 < fraction < 1) or not isinstance(seed, int):
            raise ConfigError(f"{where}: resplit needs test_fraction (a number in (0, 1)) and seed (an integer)")


def _check_ood(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """``ood: {name: {task, split, label_map, prediction_map, notes}}`` → checked entries (maps with int keys)."""
    raw = data.get("ood") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'ood' must map a name to {{task, split, label_map, ...}}")
    out = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("task"), str):
            raise ConfigError(f"{where}: ood.{name} needs 'task' (the task whose split is the OOD test set)")
        checked = {"task": entry["task"], "split": str(entry.get("split", "test")),
                   "notes": str(entry.get("notes", ""))}
        for key in ("label_map", "prediction_map"):
            mapping = entry.get(key)
            if mapping is None:
                continue
            if not isinstance(mapping, dict) or not all(
                    isinstance(k, int) and (v is None or isinstance(v, int)) for k, v in mapping.items()):
                raise ConfigError(f"{where}: ood.{name}.{key} must map label ids to label ids (or null = drop)")
            checked[key] = dict(mapping)
        out[str(name)] = checked
    return out


def _check_splits(data: dict[str, Any], where: str) -> None:
    splits = data["splits"]
    if not isinstance(splits, dict) or "train" not in splits or "test" not in splits:
        raise ConfigError(f"{where}: splits must map at least 'train' and 'test' to split names of the source")
    for key, entry in splits.items():
        if isinstance(entry, dict) and "split" not in entry:
            raise ConfigError(
                f"{where}: split {key!r} is a mapping without 'split' (give split, and mirror and/or hub)"
            )
        if not isinstance(entry, dict | str):
            raise ConfigError(f"{where}: split {key!r} must be a split name or a mapping {{split, mirror, hub}}")
    if not isinstance(data["source"], dict) or not ({"mirror", "hub"} & set(data["source"])):
        raise ConfigError(f"{where}: source must give 'mirror' (path under the data dir) and/or 'hub' (dataset name)")


def _check_columns(data: dict[str, Any], where: str) -> None:
    if data["type"] == "token_classification":
        if not data.get("tokens_column"):
            raise ConfigError(f"{where}: a token_classification task needs 'tokens_column'")
        if not data.get("label_names"):
            raise ConfigError(f"{where}: a token_classification task needs 'label_names' (IOB2 tags, in id order)")
    elif not data.get("text_columns"):
        raise ConfigError(f"{where}: 'text_columns' must list one or two text columns")
    if data["type"] == "classification" and not (data.get("num_labels") or data.get("label_names")):
        raise ConfigError(f"{where}: a classification task needs 'num_labels' or 'label_names'")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        data = yamlio.load(path)
    except FileNotFoundError:
        raise ConfigError(f"task file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"task file {path} cannot be read ({err}); give a readable YAML file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"task file {path} is not valid YAML: {yamlio.describe_error(err)}") from None
    spec = parse_task(data, str(path))
    if spec.name != path.stem:
        raise ConfigError(f"task file {path} declares name {spec.name!r}; the file must be named {spec.name}.yaml")
    return spec


def builtin_tasks_dir() -> Path:
    return Path(str(importlib.resources.files("regbench.benchmarks") / "tasks"))


def _task_dirs() -> list[Path]:
    """Built-in tasks, then user directories from ``$REGBENCH_TASKS_DIR`` (os.pathsep-separated)."""
    extra = [Path(p) for p in os.environ.get("REGBENCH_TASKS_DIR", "").split(os.pathsep) if p]
    return [builtin_tasks_dir(), *extra]


def _load_builtin_tasks() -> None:
    for directory in _task_dirs():
        add_tasks_dir(directory)


TASKS: Registry[TaskSpec] = Registry("task", loader=_load_builtin_tasks)


def add_tasks_dir(directory: str | Path) -> list[TaskSpec]:
    """Register every ``*.yaml`` in a directory (``--tasks-dir``); a user task may override a built-in one."""
    directory = Path(directory)
    if not directory.is_dir():
        state = "is a file, not a directory" if directory.exists() else "does not exist"
        raise ConfigError(f"tasks directory {directory} {state}; give a directory of task YAML files")
    specs = [load_task_file(p) for p in sorted(directory.glob("*.yaml"))]
    for spec in specs:
        TASKS.register(spec.name, spec, replace=True)
    return specs


def get_task(name_or_path: str) -> TaskSpec:
    """A registered task by name, or a task YAML by path."""
    if name_or_path.endswith((".yaml", ".yml")):
        return load_task_file(name_or_path)
    return TASKS.get(name_or_path)


def all_tasks() -> Iterable[TaskSpec]:
    return (spec for _, spec in TASKS.items())

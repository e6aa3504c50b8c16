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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regbench.harness.errors import ConfigError
from regbench.harness.model import TASK_TYPES
from regbench.harness.registry import Registry

# The keys each metric module returns: the primary metric must name one of them.
METRIC_OUTPUTS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "f1": ("f1",),
    "f1_macro": ("f1_macro",),
    "matthews_correlation": ("matthews_correlation",),
    "pearsonr": ("pearson",),
    "spearmanr": ("spearmanr",),
    "seqeval": ("precision", "recall", "f1", "accuracy"),
}
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_token_task(self) -> bool:
        return self.type == "token_classification"

    @property
    def is_regression(self) -> bool:
        return self.type == "regression"

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
    if not isinstance(data["version"], int):
        raise ConfigError(f"{where}: version must be an integer, got {data['version']!r}")
    _check_splits(data, where)
    _check_columns(data, where)
    metrics = tuple(_as_list(data["metrics"]))
    for metric in metrics:
        if metric not in METRIC_OUTPUTS:
            raise ConfigError(f"{where}: unknown metric {metric!r} (known: {', '.join(METRIC_OUTPUTS)})")
    outputs = {key for metric in metrics for key in METRIC_OUTPUTS[metric]}
    primary = tuple(_as_list(data["primary"]))
    for key in primary:
        if key not in outputs:
            raise ConfigError(f"{where}: primary {key!r} is not an output of its metrics (outputs: {', '.join(sorted(outputs))})")
    known = {f for f in TaskSpec.__dataclass_fields__}
    extra = {k: v for k, v in data.items() if k not in known}
    label_names = tuple(data.get("label_names") or ())
    num_labels = int(data.get("num_labels") or len(label_names) or 1)
    return TaskSpec(
        name=str(data["name"]), version=data["version"], type=data["type"], source=dict(data["source"]),
        splits=dict(data["splits"]), label_column=str(data["label_column"]), metrics=metrics, primary=primary,
        text_columns=tuple(_as_list(data.get("text_columns") or ())), tokens_column=data.get("tokens_column"),
        num_labels=num_labels, label_names=label_names, description=str(data.get("description", "")),
        family=str(data.get("family", "")), notes=str(data.get("notes", "")), path=path, extra=extra,
    )


def _check_splits(data: dict[str, Any], where: str) -> None:
    splits = data["splits"]
    if not isinstance(splits, dict) or "train" not in splits or "test" not in splits:
        raise ConfigError(f"{where}: splits must map at least 'train' and 'test' to split names of the source")
    for key, entry in splits.items():
        if isinstance(entry, dict) and "split" not in entry:
            raise ConfigError(f"{where}: split {key!r} is a mapping without 'split' (give split, and mirror and/or hub)")
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
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"task file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"task file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
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
        raise ConfigError(f"tasks directory {directory} does not exist")
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

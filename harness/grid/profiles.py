"""Benchmark profiles (``benchmarks/profiles/<name>.yaml``): which grid to run and at what size.

A profile names tasks × few-shot sizes × label-noise levels × methods, the seeds of the final runs, the model, the
shared training settings and the equal trial budget of every method. Everything is validated when the profile is
loaded, so bad input (an unknown key, a noise rate outside [0, 1), an empty task list, a search-space bound with
low > high, an unknown task or method) is one clear line before any run starts. A profile file may also be given
by path (``--profile my/grid.yaml``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..catalogue import list_profiles, profiles_dir  # noqa: F401 — re-exported (profiles.list_profiles)
from ..core import yamlio
from ..core.errors import ConfigError, RegbenchError
from ..core.options import profile_keys
from ..run.config import RunConfig, TrainConfig
from . import subgrids
from .tune import PRUNER_SETTINGS

# The grid's own keys. A profile's run settings (model, epochs, dropout, ...) are fields of RunConfig and
# TrainConfig marked profile_key (harness/run/config.py), which give their defaults and help.
GRID_KEYS = {
    "description": "one line shown by `regbench ls profiles`",
    "tasks": "task names (or YAML paths)",
    "sizes": "training sizes: k16 (per class), n500 (in total), full",
    "noise": "label-noise rates in [0, 1)",
    "blocks": "optional sub-grids [{tasks, sizes, noise}]: run only the (task, size, noise) blocks they name "
              "(default: every combination)",
    "seeds": "seeds of the final runs (seed → split, noise draw, init)",
    "tune_seed": "the seed whose split the trials tune on; never one of seeds (default 0: never reported)",
    "methods": "method names, or `all` (every registered method); must include std",
    "method_params": "fixed (untuned) method parameters: {method: {param: value}}",
    "trials": "Optuna trials per cell, equal for every method (COMPLETE + PRUNED count)",
    "startup_trials": "trials drawn with common random numbers across a block's methods before TPE (default 10)",
    "pruner": "none (default) | median | halving, or {type: median, n_startup_trials, n_warmup_steps} | "
              "{type: halving, min_resource, reduction_factor}",
    "search_space": "overrides: {method: {param: {low, high, log} | {choices: [...]}}}",
    "train": "other TrainConfig settings (lr is tuned): weight_decay, warmup_ratio, ...",
}
RUN_KEYS, TRAIN_KEYS = profile_keys(RunConfig), profile_keys(TrainConfig)
KEYS = GRID_KEYS | RUN_KEYS | TRAIN_KEYS


@dataclass(frozen=True)
class Profile:
    name: str
    path: str
    tasks: tuple[str, ...]
    sizes: tuple[Any, ...]
    noise: tuple[float, ...]
    seeds: tuple[int, ...]
    methods: tuple[str, ...]
    trials: int
    description: str = ""
    blocks: tuple[tuple[str, str, float], ...] = ()  # empty: the full task × size × noise product (grid.subgrids)
    tune_seed: int = 0
    startup_trials: int = 10
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Off by default: its measured cost on dev differs by method (README, results/perf/pruning-*.md).
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "none"})
    search_space: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The run settings every cell shares (model, lengths, dropout, OOD/collapse, training settings but the tuned lr);
    # a cell's runs are this config with the cell's task, size, noise, method and seed (grid.cells.template).
    run: RunConfig = field(default_factory=RunConfig)

    def space(self, method_cls: Any) -> dict[str, BaseDistribution]:
        """The method's own search space with this profile's overrides applied."""
        space = dict(method_cls.search_space())
        for param, spec in self.search_space.get(method_cls.name, {}).items():
            space[param] = _distribution(spec, f"profile {self.name}: search_space.{method_cls.name}.{param}")
        return space


def load_profile(name_or_path: str) -> Profile:
    """A shipped profile by name, or a YAML file by path; validated (one clear line on bad input)."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = profiles_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            known = [p.stem for p in sorted(profiles_dir().glob("*.yaml"))]
            close = difflib.get_close_matches(name_or_path, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown profile {name_or_path!r} (known: {', '.join(known)}){hint}")
    try:
        data = yamlio.load(path) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"profile {path} is not valid YAML: {yamlio.describe_error(err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"profile {path} cannot be read ({err}); give a readable YAML file") from None
    return parse_profile(data, path.stem, str(path))


def parse_profile(data: dict[str, Any], name: str, path: str = "<memory>") -> Profile:
    where = f"profile {path}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a YAML mapping")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(KEYS)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for key in ("tasks", "sizes", "noise", "seeds", "methods", "trials"):
        if key not in data:
            raise ConfigError(f"{where} is missing {key!r} ({KEYS[key]})")
    _check_types(data, where)
    values = dict(data)
    values["methods"] = _methods(values["methods"], where)
    for key in ("tasks", "sizes", "noise", "seeds"):
        values[key] = tuple(_as_list(values[key]))
        if not values[key]:
            raise ConfigError(f"{where}: {key} is empty ({KEYS[key]})")
    blocks = values.pop("blocks", None)
    if "pruner" in values:
        values["pruner"] = _pruner(values["pruner"], where)
    values["run"] = _run_settings(values, where)
    profile = Profile(name=name, path=path, **values)
    _check(profile, where)  # blocks last: their values are checked against the validated lists
    blocks = () if blocks is None else subgrids.parse_blocks(blocks, profile.tasks, profile.sizes, profile.noise, where)
    return dataclasses.replace(profile, blocks=blocks)


def _run_settings(values: dict[str, Any], where: str) -> RunConfig:
    """The profile's run settings (its RunConfig/TrainConfig keys and ``train:``) taken out of ``values``."""
    train = values.pop("train", None) or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train) - known | ({"lr", *TRAIN_KEYS} & set(train)))
    if unknown:
        raise ConfigError(f"{where}: train.{unknown[0]} is not a training setting here (lr is tuned; "
                          f"known: {', '.join(f.name for f in dataclasses.fields(TrainConfig) if f.name != 'lr')})")
    train_config = TrainConfig(**{k: values.pop(k) for k in TRAIN_KEYS if k in values}, **train)
    return RunConfig(**{k: values.pop(k) for k in RUN_KEYS if k in values}, train=train_config)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _count(least: int, optional: bool = False) -> Any:
    return lambda v: (optional and v is None) or (isinstance(v, int) and not isinstance(v, bool) and v >= least)


def _names_to(v: Any, inner: Any = lambda x: True) -> bool:
    """A mapping with string keys (names of methods, parameters, settings) whose values pass ``inner``."""
    return isinstance(v, dict) and all(isinstance(k, str) and inner(x) for k, x in v.items())


def _mapping_of_mappings(v: Any) -> bool:
    return _names_to(v, _names_to)


# What each key's value must be, checked before anything uses it: a wrong type anywhere in a profile is one line
# naming the key, never a TypeError from deep inside the grid. (Lists and their items are checked by _check.)
TYPES: dict[str, tuple[Any, str]] = {
    "description": (lambda v: isinstance(v, str), "a string"),
    "model": (lambda v: isinstance(v, str) and bool(v), "a checkpoint name or path"),
    "noise_type": (lambda v: isinstance(v, str), "symmetric or asymmetric"),
    "trials": (_count(1), "an integer ≥ 1"),
    "epochs": (_count(1), "an integer ≥ 1"),
    "batch_size": (_count(1), "an integer ≥ 1"),
    "max_length": (_count(2), "an integer ≥ 2 (tokens)"),
    "max_test_examples": (_count(1, optional=True), "an integer ≥ 1 or null"),
    "dev_size": (_count(1, optional=True), "an integer ≥ 1 or null"),
    "dropout": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "pooling": (lambda v: v in (None, "mean", "cls", "pooler"), "mean, cls, pooler or null"),
    "pruner": (lambda v: v is None or isinstance(v, str | dict), "a pruner name or a mapping with type"),
    "train": (_names_to, "a mapping of training settings"),
    "method_params": (_mapping_of_mappings, "a mapping {method: {param: value}}"),
    "search_space": (lambda v: _names_to(v, _mapping_of_mappings),
                     "a mapping {method: {param: {low, high, log} | {choices: [...]}}}"),
}


def _check_types(data: dict[str, Any], where: str) -> None:
    for key, (accepts, expected) in TYPES.items():
        if key in data and not accepts(data[key]):
            raise ConfigError(f"{where}: {key} must be {expected}, got {data[key]!r}")
    for key, accepts, expected in (("tasks", lambda v: isinstance(v, str), "task names"),
                                   ("sizes", lambda v: isinstance(v, str | int) and not isinstance(v, bool),
                                    "sizes such as k16, n500 or full"),
                                   ("noise", _number, "numbers in [0, 1)"),
                                   ("seeds", lambda v: isinstance(v, int) and not isinstance(v, bool), "integers")):
        bad = [v for v in _as_list(data.get(key)) if not accepts(v)]
        if bad:
            raise ConfigError(f"{where}: {key} must list {expected}, got {bad[0]!r}")
    for name, value in (data.get("train") or {}).items():
        default = getattr(TrainConfig(), str(name), None)
        if isinstance(default, int | float | str) and not _same_kind(value, default):
            raise ConfigError(f"{where}: train.{name} must be {_kind(default)}, got {value!r}")


def _same_kind(value: Any, default: Any) -> bool:
    """A YAML value fits a setting whose default is ``default``: an int where an int belongs, any number for a
    float (``1e-3`` reads as one: harness.core.yamlio), a string for a string."""
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, int) and not isinstance(default, bool):
        return isinstance(value, int) and not isinstance(value, bool)
    return _number(value) if isinstance(default, float) else isinstance(value, type(default))


def _kind(default: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[type(default)]


def _methods(value: Any, where: str) -> tuple[str, ...]:
    from ..run.method import METHODS

    names = list(METHODS.names()) if value == "all" else _as_list(value)
    canonical = tuple(METHODS.get(str(n)).name for n in names)  # unknown names fail with "did you mean"
    if "std" not in canonical:
        raise ConfigError(f"{where}: methods must include std (the reference of every paired test)")
    return canonical


def _pruner(value: Any, where: str) -> dict[str, Any]:
    spec = {"type": value} if isinstance(value, str) or value is None else dict(value)
    spec["type"] = str(spec.get("type") or "none")
    if spec["type"] not in PRUNER_SETTINGS:
        raise ConfigError(f"{where}: pruner type must be median, halving or none, got {spec['type']!r}")
    settings = PRUNER_SETTINGS[spec["type"]]
    for key, setting in spec.items():
        if key == "type":
            continue
        if key not in settings:
            close = difflib.get_close_matches(str(key), settings, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: pruner {spec['type']} takes {', '.join(settings) or 'no settings'}, "
                              f"not {key!r}{hint}")
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < settings[key][1]:
            raise ConfigError(f"{where}: pruner {key} must be an integer ≥ {settings[key][1]}, got {setting!r}")
    return spec


def _check(profile: Profile, where: str) -> None:
    from regbench.benchmarks.fewshot import parse_size
    from regbench.benchmarks.noise import NoiseSpec
    from regbench.benchmarks.taskspec import get_task

    from ..run.method import METHODS

    for rate in profile.noise:
        if not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ConfigError(f"{where}: noise rate {rate!r} must be a number in [0, 1)")
    NoiseSpec(0.0, profile.run.noise_type).validate()
    for size in profile.sizes:
        try:
            parse_size(size)
        except RegbenchError as err:  # fewshot says DataError; in a profile it is a configuration value
            raise ConfigError(f"{where}: sizes: {err}") from None
    for task in profile.tasks:
        get_task(task)
    for key in ("ood", "collapse"):
        if not isinstance(getattr(profile.run, key), bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {getattr(profile.run, key)!r}")
    if not isinstance(profile.trials, int) or profile.trials < 1:
        raise ConfigError(f"{where}: trials must be an integer ≥ 1, got {profile.trials!r}")
    if any(not isinstance(s, int) for s in profile.seeds) or len(set(profile.seeds)) != len(profile.seeds):
        raise ConfigError(f"{where}: seeds must be distinct integers, got {list(profile.seeds)}")
    tune_seed = profile.tune_seed
    if isinstance(tune_seed, bool) or not isinstance(tune_seed, int) or tune_seed in profile.seeds:
        raise ConfigError(f"{where}: tune_seed must be an integer outside seeds (trials tune on a split that is never "
                          f"reported), got {profile.tune_seed!r} with seeds {list(profile.seeds)}")
    for key, value in (("startup_trials", profile.startup_trials), ("evals", profile.run.train.evals)):
        if (value is not None or key == "startup_trials") and (
                isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "startup_trials" else 1)):
            raise ConfigError(f"{where}: {key} must be an integer ≥ {0 if key == 'startup_trials' else 1}, "
                              f"got {value!r} ({KEYS[key]})")
    profile.run.train.validate()
    for method in profile.methods:
        cls = METHODS.get(method)
        profile.space(cls)
        params = profile.method_params.get(method, {})
        defaults = {f.name: f.default for f in dataclasses.fields(cls.config_class)}
        for name, value in params.items():  # unknown names: from_params says which ones exist
            default = defaults.get(name)
            if isinstance(default, int | float | str) and not _same_kind(value, default):
                raise ConfigError(f"{where}: method_params.{method}.{name} must be {_kind(default)}, got {value!r}")
        cls.from_params(params)
    for method in set(profile.search_space) | set(profile.method_params):
        if method not in profile.methods:
            raise ConfigError(f"{where}: search_space/method_params name {method!r}, which is not in methods")


def _distribution(spec: Any, where: str) -> BaseDistribution:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} must be {{low, high, log}} or {{choices: [...]}}, got {spec!r}")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices or not all(
                c is None or isinstance(c, bool | int | float | str) for c in choices):
            raise ConfigError(f"{where}: choices must be a non-empty list of numbers or strings, got {choices!r}")
        return CategoricalDistribution(choices)
    try:
        low, high = spec["low"], spec["high"]
    except KeyError as missing:
        raise ConfigError(f"{where} is missing {missing}") from None
    if not (_number(low) and _number(high) and math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where}: low and high must be finite numbers (1e-5 and 1.0e-5 both work), got "
                          f"{low!r} and {high!r}")
    if not isinstance(spec.get("log", False), bool) or not isinstance(spec.get("float", False), bool):
        raise ConfigError(f"{where}: log and float must be true or false")
    if not low <= high:
        raise ConfigError(f"{where}: low {low} is greater than high {high}")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
    if isinstance(low, int) and isinstance(high, int) and not spec.get("float"):
        return IntDistribution(low, high, log=bool(spec.get("log")))
    return FloatDistribution(float(low), float(high), log=bool(spec.get("log")))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]

"""A grid's cells (task × size × noise × method) and their keys: what ``plan`` lists and ``bench`` runs.

A cell key hashes the fully resolved cell (model, task version and data hashes, size, noise, method, training
settings, search space); a block key is the same without the method, so the methods of one block share their
common-random-number draws (harness.grid.tune). These keys name the Optuna studies and the committed records: a change
here orphans committed grids (tests/test_contract.py pins them). harness.grid re-exports everything for its users.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regbench.benchmarks.fewshot import SizeSpec, check_size_fits, parse_size
from regbench.benchmarks.noise import NoiseSpec, check_task_supports
from regbench.benchmarks.taskspec import get_task

from .. import api
from ..core import keys
from ..core.errors import ConfigError, DataError
from ..io import records
from ..post.ood import check_ood
from ..run.method import METHODS
from ..run.model import load_pretrained
from . import subgrids
from .profiles import Profile

__all__ = ["Cell", "block_key", "cell_key", "experiment_name", "output_dir", "plan_cells", "template", "with_params"]


@dataclass(frozen=True)
class Cell:
    task: str
    size: str  # canonical label: k16 | n500 | full
    noise: float
    method: str
    key: str = ""
    na: str | None = None  # why the task cannot serve this cell (shown by `plan`, skipped by `bench`)
    block: str = ""  # key of the (task, size, noise) block: seeds the common random numbers of its methods' trials

    @property
    def name(self) -> str:
        return f"{self.task}/{self.size}/noise{self.noise:g}/{self.method}"


def output_dir(profile: Profile, out: str | Path | None = None) -> Path:
    return Path(out) if out else Path("results") / profile.name


def experiment_name(profile: Profile) -> str:
    return f"regbench-{profile.name}"


def template(profile: Profile, task: str, size: str, noise: float, method: str, out_dir: Path,
             tracking_uri: str | None, data_dir: str | None = None, track: bool = True) -> api.RunConfig:
    """The run config of a cell before tuning: the profile's settings, the method's fixed parameters."""
    return dataclasses.replace(
        profile.run, task=task, method=method, method_params=dict(profile.method_params.get(method, {})),
        train_size=size, seed=profile.tune_seed, data_dir=data_dir, out_dir=str(out_dir), tracking_uri=tracking_uri,
        experiment=experiment_name(profile), track=track, noise_rate=float(noise),
        noise_type=profile.run.noise_type if noise else "symmetric", profile=profile.name)


def with_params(config: api.RunConfig, params: dict[str, Any], **changes: Any) -> api.RunConfig:
    """A trial's or final run's config: ``lr`` goes to the training settings, the rest to the method."""
    params = dict(params)
    train = dataclasses.replace(config.train, lr=float(params.pop("lr", config.train.lr)))
    return dataclasses.replace(config, method_params={**config.method_params, **params}, train=train, **changes)


def plan_cells(profile: Profile, data_dir: str | None = None) -> list[Cell]:
    """Every cell of the profile, with its key, or the reason the task cannot serve it."""
    pretrained = load_pretrained(profile.run.model)
    cells = []
    for task_name in profile.tasks:
        task = get_task(task_name)
        if profile.run.ood:
            _check_ood_data(task, data_dir)
        for size in map(parse_size, profile.sizes):
            for noise in profile.noise:
                if not subgrids.includes(profile, task.name, size.label, noise):
                    continue
                na = _not_applicable(profile, task, size, noise, data_dir, pretrained.tokenizer)
                block = "" if na else block_key(profile, task.name, size.label, noise, pretrained.checksum, data_dir)
                for method in profile.methods:
                    base = template(profile, task.name, size.label, noise, method, Path("."), None, data_dir)
                    key = "" if na else cell_key(profile, base, pretrained.checksum)
                    cells.append(Cell(task.name, size.label, float(noise), method, key, na, block))
    return cells


def _check_ood_data(task: Any, data_dir: str | None) -> None:
    """`plan` and `bench` both stop here, before any run, when an OOD set the profile asks for has no data (unlike the
    collapse probe's optional transfer task, which final runs record and go without): a grid that tuned every cell
    and then failed each final run on the missing file would spend its whole budget for nothing."""
    try:
        check_ood(task, data_dir)
    except DataError as err:
        raise DataError(f"{err}; or set `ood: false` in the profile to skip OOD scoring") from None


def block_key(profile: Profile, task: str, size: str, noise: float, model_checksum: str,
              data_dir: str | None = None) -> str:
    """Hash of a (task, size, noise) block as every method of it sees it: a cell key without the method and its
    search space. The common-random-number start of each method's trials is drawn from it."""
    base = template(profile, task, size, noise, "std", Path("."), None, data_dir)
    described = api.describe(base, get_task(task), METHODS.get("std").from_params({}), model_checksum)
    return keys.block_key(described, _data_hashes(get_task(task), base))


def _not_applicable(profile: Profile, task: Any, size: SizeSpec, noise: float, data_dir: str | None,
                    tokenizer: Any) -> str | None:
    try:
        check_task_supports(task, NoiseSpec(float(noise), profile.run.noise_type if noise else "symmetric"))
    except ConfigError as err:
        return str(err)
    config = dataclasses.replace(profile.run, task=task.name, data_dir=data_dir)
    pool, _, _ = api.prepare_pool(task, config, tokenizer)
    return check_size_fits(task, pool.labels(), size, profile.run.dev_size)


def cell_key(profile: Profile, base: api.RunConfig, model_checksum: str) -> str:
    """Hash of the fully resolved cell: model, task version + data, size, noise, method and its fixed parameters,
    training settings and the search space. Not the seeds or the budget (topping up keeps the same study)."""
    task = get_task(base.task)
    method_cls = METHODS.get(base.method)
    method = method_cls.from_params(base.method_params)
    described = api.describe(base, task, method, model_checksum)
    return keys.cell_key(described, profile.space(method_cls), _data_hashes(task, base))


def _data_hashes(task: Any, config: api.RunConfig) -> list[str]:
    """Content hashes of the data files, not their paths: the same data under another --data-dir (another machine,
    CI) gives the same cell keys, so studies and records resume there."""
    pool, test, _ = api.prepare_pool(task, config, load_pretrained(config.model).tokenizer)
    return sorted(records.file_sha256(s) if Path(s).exists() else s for s in {pool.source, test.source})

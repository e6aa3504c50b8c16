"""The Python API behind the CLI: one call runs one training run end to end and returns its record.

    from regbench.harness.api import RunConfig, TrainConfig, run
    record = run(RunConfig(task="sst2", method="std", train_size=64, train=TrainConfig(epochs=3), seed=1))
    record["metrics"]["test"]["accuracy"]

A caller around the run (the grid) passes ``RunHooks``: its cell key, the phase, a per-evaluation callback (the
pruner) and MLflow parentage; none of them changes what is trained or any key.

Everything that can be wrong with the input (task, method, parameters, learning rate, sizes, data files) is checked
before anything is written, so bad input loses nothing and leaves no half-made run behind.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regbench.benchmarks.data import Encoded, describe_splits, encode_split, exclude_test_overlap
from regbench.benchmarks.fewshot import parse_size, plan_per_class, plan_split, stratified_subsample
from regbench.benchmarks.noise import NoiseSpec, apply_noise, check_task_supports
from regbench.benchmarks.taskspec import TaskSpec, get_task

from .core import keys
from .core.errors import DataError
from .io import records, tracking
from .io.cell_summaries import method_folder
from .post import extras
from .run.config import RunConfig, TrainConfig  # noqa: F401 — TrainConfig re-exported for callers of run()
from .run.devices import resolve_device
from .run.method import get_method
from .run.model import TaskModel, load_pretrained
from .run.train import TrainResult, train

# Bump when a harness change may alter results (part of every run key, so old and new records never share a key;
# the leaderboard keeps one suite version per table). 2: tuning on a seed outside the reported ones, common random
# numbers across methods, an equal dev-evaluation schedule, MVCR's phase-2 LR restart, failure judged on test.
SUITE_VERSION = 2


def derive_seeds(seed: int) -> dict[str, int]:
    """One seed → independent streams for the data split, the label-noise draw and the initialisation."""
    data, noise, init = (int(s.generate_state(1)[0] % 2**31) for s in np.random.SeedSequence(seed).spawn(3))
    return {"data": data, "noise": noise, "init": init}


@dataclass(frozen=True)
class RunHooks:
    """What a caller around one run (the grid) adds to it. None of it enters the run's configuration or its keys."""

    cell_key: str | None = None  # default: the run's configuration without the seed (core.keys.cell_key)
    phase: str = "single"  # "trial" / "final" in a grid: stored in the record, which the leaderboard filters on
    on_epoch_end: Callable[[int, dict[str, float]], bool] | None = None  # after each dev evaluation; True stops
    parent_run_id: str | None = None  # the MLflow parent run (the grid's cell run)
    tracker_key: str | None = None  # the MLflow run's key: an unfinished run with it is reattached, not duplicated
    tags: Mapping[str, str] = field(default_factory=dict)  # extra MLflow tags ("run_name" names the run)


def run(config: RunConfig, hooks: RunHooks | None = None) -> dict[str, Any]:
    """Train and evaluate once; write the record (and an MLflow run); return the record."""
    hooks = hooks or RunHooks()
    task = get_task(config.task)
    method = get_method(config.method, config.method_params)
    config.train.validate()
    check_task_supports(task, NoiseSpec(config.noise_rate, config.noise_type))
    pretrained = load_pretrained(config.model)
    seeds = derive_seeds(config.seed)
    data, data_info = prepare_data(task, config, pretrained.tokenizer, seeds["data"], seeds["noise"])
    run_config = describe(config, task, method, pretrained.checksum)
    run_key = keys.run_key(run_config)
    cell_key = hooks.cell_key or keys.cell_key(run_config)
    out_dir = Path(config.out_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    record_path = out_dir / "records" / task.name / method_folder(method.name) / f"{run_key}-{stamp}.json"

    tracker = _tracker(config, task, method.name, cell_key, run_key, hooks)
    with tracker as t:
        t.log_params({"config": run_config, "cell_key": cell_key, "run_key": run_key})

        def epoch_end(epoch: int, metrics: dict[str, float]) -> bool:
            t.log_metrics(metrics, step=epoch)
            return bool(hooks.on_epoch_end(epoch, metrics)) if hooks.on_epoch_end is not None else False

        start = time.perf_counter()
        torch.manual_seed(seeds["init"])  # dropout and anything the method draws from the global stream
        model = TaskModel(pretrained, task.type, task.num_labels, config.pooling, config.dropout,
                          head_seed=seeds["init"])
        result = train(model, method, task, data, config.train, seeds["init"], pretrained.tokenizer.pad_token_id,
                       on_epoch_end=epoch_end)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        post = extras.post_train_metrics(model, task, pretrained, config, data, result.best_epoch is not None)
        extras_seconds = time.perf_counter() - start  # OOD + collapse, after training
        extras.log_metrics(post, t, result.best_epoch or 0)
        record = build_record(config, task, method.name, run_config, run_key, cell_key, seeds, data_info, result,
                              wall, pretrained.checksum, getattr(t, "run_id", None), hooks.phase, extras=post,
                              extras_seconds=extras_seconds, phases=method.phase_note(config.train.epochs))
        if config.write_record:
            records.write_record(record_path, record)
        t.log_metrics({f"test/{k}": v for k, v in (record["metrics"]["test"] or {}).items()},
                      step=result.best_epoch or 0)
        t.log_dict_artifact(record, "record.json")
        t.log_dict_artifact(run_config, "config.yaml")
        t.set_tags({"status": result.status, **({"record": str(record_path)} if config.write_record else {})})
    record["_path"] = str(record_path) if config.write_record else None
    return record


def run_key(config: RunConfig) -> str:
    """The key :func:`run` will give this run (the grid checks for its record before running it)."""
    task, method = get_task(config.task), get_method(config.method, config.method_params)
    return keys.run_key(describe(config, task, method, load_pretrained(config.model).checksum))


_POOLS: dict[tuple[int, int], Encoded] = {}


def prepare_pool(task: TaskSpec, config: RunConfig, tokenizer: Any) -> tuple[Encoded, Encoded, int]:
    """(training pool without test duplicates, test split, pool size before the exclusion); memoised in-process,
    since every trial and seed of a grid cell starts from the same pool."""
    pool = encode_split(task, "train", tokenizer, config.max_length, config.data_dir)
    test = encode_split(task, "test", tokenizer, config.max_length, config.data_dir)
    _check_labels(task, pool)
    key = (id(pool), id(test))  # encode_split memoises these objects, so ids identify them for the process
    if key not in _POOLS:
        _POOLS[key] = pool.subset(exclude_test_overlap(pool, test))
    return _POOLS[key], test, len(pool)


def prepare_data(task: TaskSpec, config: RunConfig, tokenizer: Any, data_seed: int,
                 noise_seed: int = 0) -> tuple[dict[str, list], dict[str, Any]]:
    """Train/dev drawn from the pool (data seed), label noise on both (noise seed), the test split (clean).
    With ``evaluate_test=False`` (tuning) the test features are not handed to the loop at all."""
    pool, test, full_pool = prepare_pool(task, config, tokenizer)
    size = parse_size(config.train_size)
    if size.per_class is not None:
        plan = plan_per_class(task, pool.labels(), size.per_class, data_seed)
    else:
        plan = plan_split(task, pool.labels(), size.total, config.dev_size, data_seed)
    if config.max_test_examples and config.max_test_examples < len(test):
        test = test.subset(stratified_subsample(task, test.labels(), config.max_test_examples, seed=0))
    info: dict[str, Any] = {
        "pool_size": len(pool), "pool_excluded_test_duplicates": full_pool - len(pool), "train_size": len(plan.train),
        "dev_size": len(plan.dev), "test_size": len(test),
        "test_capped": bool(config.max_test_examples and len(test) == config.max_test_examples),
        "train_ids_sha256": keys.digest([pool.features[i]["idx"] for i in plan.train]),
        "dev_ids_sha256": keys.digest([pool.features[i]["idx"] for i in plan.dev]),
        "files": sorted({pool.source, test.source}),
        "split_rule": describe_splits(task),
        "size": size.label,
    }
    noise = NoiseSpec(config.noise_rate, config.noise_type)
    train_set, info["noise_train"] = apply_noise(task, pool.subset(plan.train).features, noise, noise_seed)
    dev_set, info["noise_dev"] = apply_noise(task, pool.subset(plan.dev).features, noise, noise_seed + 1)
    data: dict[str, Any] = {"train": train_set, "dev": dev_set, "test": test.features if config.evaluate_test else None}
    return data, info


def _check_labels(task: TaskSpec, pool: Encoded) -> None:
    if task.type != "classification" or not pool.features:
        return
    labels = set(pool.labels())
    bad = [y for y in labels if not (isinstance(y, int) and 0 <= y < task.num_labels)]
    if bad:
        raise DataError(f"task {task.name!r}: label {bad[0]!r} in {pool.source} is outside 0..{task.num_labels - 1} "
                        "(fix num_labels/label_names)")


def describe(config: RunConfig, task: TaskSpec, method: Any, model_checksum: str) -> dict[str, Any]:
    """The fully resolved configuration of a run: what its key hashes and its record stores."""
    return {
        "suite_version": SUITE_VERSION,
        "task": task.key(),
        "method": {"name": method.name, "params": method.config.to_dict()},
        "model": {"name": config.model, "checksum": model_checksum, "pooling": config.pooling,
                  "dropout": config.dropout},
        "data": {"train_size": parse_size(config.train_size).label, "dev_size": config.dev_size,
                 "noise": {"rate": config.noise_rate, "type": config.noise_type} if config.noise_rate else None,
                 "max_test_examples": config.max_test_examples, "max_length": config.max_length},
        "train": dataclasses.asdict(config.train),
        "seed": config.seed,
    }


def build_record(config: RunConfig, task: TaskSpec, method_name: str, run_config: dict[str, Any], run_key: str,
                 cell_key: str, seeds: dict[str, int], data_info: dict[str, Any], result: TrainResult, wall: float,
                 model_checksum: str, mlflow_run_id: str | None, phase: str = "single", *,
                 extras: dict[str, Any] | None = None, extras_seconds: float | None = None,
                 phases: str | None = None) -> dict[str, Any]:
    """A run's record from its pieces: the training result, the post-training ``extras`` (OOD and collapse, from
    ``extras.post_train_metrics``; None where not measured), what they cost, and ``phases`` (what the method did
    beyond STD's schedule, "" for nothing). ``records.build_record`` assembles and validates it."""
    test = result.test.metrics if result.test else None
    noise = data_info["noise_train"]
    run_info = {
        "run_id": run_key, "cell_key": cell_key, "task": task.name, "method": method_name, "seed": config.seed,
        "seeds": seeds, "status": result.status, "error": result.error, "config": run_config,
        "mlflow_run_id": mlflow_run_id, "profile": config.profile, "phase": phase, "size": data_info["size"],
        # type: the grid's axis as asked (symmetric/asymmetric); rule: how it applied to this task type (a
        # regression task gets Gaussian noise), so the leaderboard groups one noise level across task types
        "noise": {"type": config.noise_type if config.noise_rate else "none", "rule": noise["type"],
                  "rate": config.noise_rate, "realised_rate": noise["realised_rate"],
                  "flipped_sha256": noise["flipped_sha256"]},
        "params": run_config["method"]["params"] | {"lr": config.train.lr},
    }
    train_seconds = sum(result.epoch_seconds)
    train_info = {
        "dev_curve": result.dev_curve, "best_epoch": result.best_epoch, "majority_dev": result.majority_dev,
        "epoch_losses": result.epoch_losses, "epoch_seconds": result.epoch_seconds, "eval_seconds": result.eval_seconds,
        "wall_seconds": wall, "steps": result.steps, "examples_seen": result.train_examples_seen,
        "samples_per_second": result.train_examples_seen / train_seconds if train_seconds else None,
        "tokens_per_second": result.train_tokens_seen / train_seconds if train_seconds else None,
        "peak_memory_mb": result.peak_memory_mb, "data": data_info,
        "stopped_at_epoch": result.extra.get("stopped_at_epoch"),
        # the dev-evaluation schedule (optimiser steps) and the clean test set's majority-class score (failure line)
        "eval_steps": result.extra.get("eval_steps"), "steps_per_epoch": result.extra.get("steps_per_epoch"),
        "majority_test": result.extra.get("majority_test"),
        "inference_parameters": result.extra.get("inference_parameters"),  # parameters of the model scored on test
        "extras_seconds": extras_seconds, "phases": phases,
    }
    metrics = {"test": test, "dev": result.dev.metrics if result.dev else None,
               "ood": (extras or {}).get("ood"), "collapse": (extras or {}).get("collapse")}
    predictions = records.compact_predictions(result.test.ids, result.test.predictions, _prediction_kind(task),
                                              result.test.references) if result.test else None
    meta = records.collect_provenance(model_name=config.model, model_checksum=model_checksum,
                                      data_files=[f for f in data_info["files"] if not f.startswith("hub:")],
                                      device=str(resolve_device(config.train.device)))  # as run: never "auto"
    return records.build_record(run_info=run_info, train_info=train_info, metrics=metrics, predictions=predictions,
                                meta_info=meta)


def _prediction_kind(task: TaskSpec) -> str:
    return "value" if task.is_regression else "tags" if task.is_token_task else "label"


def _tracker(config: RunConfig, task: TaskSpec, method: str, cell_key: str, run_key: str, hooks: RunHooks) -> Any:
    if not config.track:
        return tracking.NullTracker()
    uri = config.tracking_uri or tracking.default_tracking_uri(config.out_dir)
    tags = {"task": task.name, "method": method, "seed": str(config.seed), "cell_key": cell_key, "run_key": run_key,
            **hooks.tags}
    name = tags.pop("run_name", f"{task.name}/{method}/seed{config.seed}")
    return tracking.RunTracker(uri, config.experiment, name, tags=tags, parent_run_id=hooks.parent_run_id,
                               key=hooks.tracker_key)

"""Post-training extras of a final run: OOD metrics and representation-collapse metrics, in one place.

``post_train_metrics`` runs after ``train`` returns (the model holds the selected checkpoint, finalized);
``harness.api`` hands its result to ``records.build_record`` (``record["metrics"]["ood"]`` and
``record["metrics"]["collapse"]``, schema version 2) and ``log_metrics`` logs it to the MLflow run
(``ood/<set>/<metric>``, ``collapse/<metric>``). Both are on by default (``RunConfig.ood``,
``RunConfig.collapse``) and skipped for tuning trials (``evaluate_test=False``: nothing beyond dev is looked at
while tuning) and for runs that never produced a checkpoint (diverged in the first epoch).

Choices (ours, recorded under ``record["metrics"]["collapse"]["settings"]``):
- Probe set: a fixed subsample (seed 0) of the task's test *inputs* (labels unused), at most ``PROBE_EXAMPLES``
  and at most the run's test cap, so every method and seed of a task is compared on the same sentences.
- Probe transfer: the first task of ``TRANSFER_TASKS`` that is not the run's own task (TREC question type: a
  6-class task unlike the sentiment/NLI/paraphrase tasks; SST-2 for TREC itself); a ``TRANSFER_K``-per-class
  few-shot training split drawn with seed 0 from its training pool, scored on its test split (capped like OOD).
- Caps: OOD sets at most ``OOD_MAX_EXAMPLES`` and at most the run's test cap (``max_test_examples``), so the CPU
  profiles that cap their test sets cap these too.
- Cache: the probe batches, the transfer set and the pretrained encoder's side of the metrics (its probe
  representations and transfer accuracy) depend on the checkpoint, the task and these settings, never on the run,
  so each process computes them once per task (``_task_probe``) and a run only encodes with its fine-tuned model.
  The numbers are the same as without the cache (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regbench.benchmarks.data import encode_split
from regbench.benchmarks.fewshot import plan_per_class, stratified_subsample
from regbench.benchmarks.taskspec import TaskSpec, get_task

from ..core.errors import DataError
from ..run import batching
from ..run.config import RunConfig
from ..run.model import Pretrained, TaskModel
from ..run.train import autocast_factory
from .collapse import PretrainedReference, TransferSet, collapse_metrics, pretrained_reference
from .ood import evaluate_ood

PROBE_EXAMPLES = 256
OOD_MAX_EXAMPLES = 1000
TRANSFER_TASKS = ("trec", "sst2")
TRANSFER_K = 16
TRANSFER_TEST_EXAMPLES = 500


def _cap(limit: int, config: RunConfig) -> int:
    return min(limit, config.max_test_examples) if config.max_test_examples else limit


def post_train_metrics(model: TaskModel, task: TaskSpec, pretrained: Pretrained, config: RunConfig,
                       data: dict[str, Any], trained: bool = True) -> dict[str, Any]:
    """``{"ood": {set: metrics} | None, "collapse": {"metrics": ..., "settings": ...} | None}`` for one run."""
    if not config.evaluate_test or not trained:
        return {"ood": None, "collapse": None}
    device = next(model.parameters()).device
    out: dict[str, Any] = {"ood": None, "collapse": None}
    if getattr(config, "ood", True) and task.ood:
        out["ood"] = evaluate_ood(
            model, task, pretrained.tokenizer, config.max_length, config.data_dir,
            exclude=[*data["train"], *data["dev"]], max_examples=_cap(OOD_MAX_EXAMPLES, config),
            batch_size=config.train.eval_batch_size, autocast=autocast_factory(device, config.train.precision))
    if getattr(config, "collapse", True):
        out["collapse"] = _collapse(model, task, pretrained, config, device)
    return out


def _batches(features: list[dict[str, Any]], config: RunConfig, pad_id: int, device: Any) -> list[dict[str, Any]]:
    order = batching.eval_order([len(f["input_ids"]) for f in features], config.train.eval_batch_size)
    return list(batching.iterate(features, order, pad_id, device))


@dataclass(frozen=True)
class _TaskProbe:
    probe_batches: list[dict[str, Any]]
    transfer: TransferSet | None
    transfer_error: str | None
    reference: PretrainedReference


_TASK_PROBES: dict[tuple[Any, ...], _TaskProbe] = {}


def _task_probe(task: TaskSpec, pretrained: Pretrained, pooling: str, config: RunConfig, device: Any) -> _TaskProbe:
    """The run-independent half of a task's collapse metrics, computed once per process (see the module docstring)."""
    key = (pretrained.name, pretrained.checksum, task.name, task.version, pooling, str(device), config.max_length,
           config.max_test_examples, config.train.eval_batch_size, str(config.data_dir))
    if key not in _TASK_PROBES:
        tokenizer, pad_id = pretrained.tokenizer, pretrained.tokenizer.pad_token_id
        test = encode_split(task, "test", tokenizer, config.max_length, config.data_dir)
        probe = test.subset(stratified_subsample(task, test.labels(), _cap(PROBE_EXAMPLES, config), seed=0))
        try:
            transfer, transfer_error = _transfer_set(task, config, tokenizer, pad_id, device), None
        except DataError as err:  # the other task's data is absent: keep the rest, say why the probe is missing
            transfer, transfer_error = None, str(err)
        probe_batches = _batches(probe.features, config, pad_id, device)
        start = TaskModel(pretrained, task.type, task.num_labels, pooling, dropout=0.0).to(device)
        _TASK_PROBES[key] = _TaskProbe(probe_batches, transfer, transfer_error,
                                       pretrained_reference(start, probe_batches, transfer))
    return _TASK_PROBES[key]


def _collapse(model: TaskModel, task: TaskSpec, pretrained: Pretrained, config: RunConfig,
              device: Any) -> dict[str, Any]:
    cached = _task_probe(task, pretrained, model.pooling, config, device)
    transfer = cached.transfer
    metrics = collapse_metrics(model, cached.reference, cached.probe_batches, transfer)
    rows = sum(len(batch["input_ids"]) for batch in cached.probe_batches)
    settings = {"probe_set": f"{task.name} test split, fixed subsample (seed 0)", "probe_examples": rows,
                "pooling": model.pooling, "transfer_task": transfer.task if transfer else None,
                "transfer_train": f"k{TRANSFER_K} per class from the training pool (seed 0)" if transfer else None,
                "transfer_test_examples": len(transfer.test_labels) if transfer else 0,
                "transfer_error": cached.transfer_error}
    return {"metrics": metrics, "settings": settings}


def _transfer_set(task: TaskSpec, config: RunConfig, tokenizer: Any, pad_id: int, device: Any) -> TransferSet:
    """The other task's few-shot training split and its (capped) test split, as batches on the model's device."""
    name = next(t for t in TRANSFER_TASKS if t != task.name)
    other = get_task(name)
    pool = encode_split(other, "train", tokenizer, config.max_length, config.data_dir)
    test = encode_split(other, "test", tokenizer, config.max_length, config.data_dir)
    train = pool.subset(plan_per_class(other, pool.labels(), TRANSFER_K, seed=0).train)
    test = test.subset(stratified_subsample(other, test.labels(), _cap(TRANSFER_TEST_EXAMPLES, config), seed=0))
    train_batches = _batches(train.features, config, pad_id, device)
    test_batches = _batches(test.features, config, pad_id, device)
    # Batches are length-sorted: read the labels back from them so features and labels stay aligned.
    return TransferSet(name, train_batches, [int(y) for b in train_batches for y in b["labels"].tolist()],
                       test_batches, [int(y) for b in test_batches for y in b["labels"].tolist()])


def log_metrics(extras: dict[str, Any], tracker: Any, step: int) -> None:
    """Log the extras' numbers to the MLflow run (the record gets them from ``records.build_record``)."""
    flat = {f"ood/{name}/{key}": value for name, values in (extras.get("ood") or {}).items()
            for key, value in values.items()}
    collapse = (extras.get("collapse") or {}).get("metrics") or {}
    flat.update({f"collapse/{key}": value for key, value in collapse.items()})
    if flat:
        tracker.log_metrics(flat, step=step)

"""The training loop: one run = model + method hooks + data → dev curve, best epoch, test metrics.

Not HF ``Trainer``: it hides the places methods hook into. The loop knows no method by name; it calls the hooks of
``harness.run.method.Method``. What it does, in order: seed, let the method prepare, build fused AdamW over the method's
parameter groups with linear warm-up/decay, train with dynamic padding (length-grouped batches), evaluate on dev
after every epoch, keep the best epoch's weights in memory, restore them, let the method finalize (unplug what it
injected), and evaluate the test set once. On CPU the same seed gives bit-identical metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from ..core.errors import ConfigError
from . import batching
from .config import TrainConfig  # noqa: F401 — re-exported (run.train.TrainConfig)
from .devices import autocast_factory, resolve_device  # noqa: F401 — re-exported (train.resolve_device)
from .evaluation import EvalResult, evaluate_model, is_failed, majority_baseline
from .method import Method, TrainContext
from .model import TaskModel


@dataclass
class TrainResult:
    status: str  # ok | failed | diverged
    dev_curve: list[dict[str, Any]]
    best_epoch: int | None
    dev: EvalResult | None
    test: EvalResult | None
    majority_dev: float
    epoch_losses: list[dict[str, float]]
    epoch_seconds: list[float]
    eval_seconds: float
    steps: int
    train_examples_seen: int
    train_tokens_seen: int
    peak_memory_mb: float | None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def eval_points(total_steps: int, pre_steps: int, evals: int) -> list[int]:
    """The optimiser steps after which dev is evaluated: ``evals`` points spread evenly over the main phase (the steps
    after a method's extra leading phase), the last at its end. With one evaluation per epoch of STD's length these
    are STD's epoch ends, so every method of a cell gets the same number of looks at dev at the same fractions of
    its main phase (a longer run, STD++, is evaluated less often per epoch, not more often)."""
    main = total_steps - pre_steps
    points = sorted({pre_steps + max(1, round(j * main / evals)) for j in range(1, evals + 1)} if main > 0 else set())
    return [p for p in points if p <= total_steps]


@dataclass
class _Progress:
    """What the loop has measured so far (one run)."""

    curve: list[dict[str, Any]] = field(default_factory=list)
    losses: list[dict[str, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: Any = None
    best_dev: EvalResult | None = None
    status: str = "ok"
    error: str | None = None
    eval_seconds: float = 0.0
    seen: int = 0
    tokens: int = 0
    step: int = 0
    epoch_steps: int = 0
    stopped_at: Any = None
    sums: dict[str, Any] = field(default_factory=dict)  # tensors: summed without a sync per step
    logs: dict[str, Any] = field(default_factory=dict)


def train(model: TaskModel, method: Method, task: Any, data: dict[str, list[dict[str, Any]]], config: TrainConfig,
          seed: int, pad_id: int, on_epoch_end: Callable[[int, dict[str, float]], Any] | None = None) -> TrainResult:
    """Train ``model`` with ``method`` on ``data['train']``, select on ``data['dev']``, test on ``data['test']``.

    ``data['test']`` may be None (tuning trials): then nothing is tested and the method is still finalized.
    ``on_epoch_end(point, metrics)`` is called after each dev evaluation (``point`` counts evaluations from 1)."""
    config.validate()
    device = resolve_device(config.device)
    autocast = autocast_factory(device, config.precision)
    model.to(device)
    train_set = data["train"]
    epochs = method.num_epochs(config.epochs)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = epochs * steps_per_epoch

    def train_batches():  # one pass for prepare(): deterministic order, not length-grouped
        size, n = config.batch_size, len(train_set)
        order = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        return batching.iterate(train_set, order, pad_id, device)

    ctx = TrainContext(model, task, _Reiterable(train_batches), device, config.lr, total_steps, seed, autocast=autocast,
                       steps_per_epoch=steps_per_epoch, warmup_ratio=config.warmup_ratio)
    method.prepare(ctx)
    optimizer = _build_optimizer(method.param_groups(model, config.lr, config.weight_decay), config.lr, device)
    ctx.optimizer = optimizer
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
    pre_steps = min(total_steps, method.pre_phase_epochs() * steps_per_epoch)
    loop = _Loop(model, method, task, data, config, pad_id, autocast, optimizer, scheduler,
                 eval_points(total_steps, pre_steps, config.evals or config.epochs), steps_per_epoch, on_epoch_end)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    progress = loop.run(epochs, torch.Generator().manual_seed(seed))
    return _finish(model, method, task, data, config, pad_id, loop, progress, device)


def _finish(model: TaskModel, method: Method, task: Any, data: dict[str, Any], config: TrainConfig, pad_id: int,
            loop: _Loop, p: _Progress, device: torch.device) -> TrainResult:
    """Restore the best evaluation's weights, finalize the method, judge the run and score the test set."""
    majority = majority_baseline(task, _references(task, data["dev"]))
    if p.best_state is not None:
        model.load_state_dict(p.best_state)
        method.finalize(model)
    # Peak memory of training (test scoring excluded): the same figure a run whose test set is scored later has.
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    # What inference costs after the method unplugged its training-time modules (MVCR's claim of no inference cost)
    extra = {"eval_steps": loop.points, "steps_per_epoch": loop.steps_per_epoch,
             "inference_parameters": sum(param.numel() for param in model.parameters())}
    if p.stopped_at:
        extra["stopped_at_epoch"] = p.stopped_at
    result = TrainResult(p.status, p.curve, p.best_epoch, p.best_dev, None, majority, p.losses, p.epoch_seconds,
                         p.eval_seconds, p.step, p.seen, p.tokens, peak, p.error, extra=extra)
    return result if data["test"] is None else score_test_set(model, task, data["test"], config, pad_id, result)


def _references(task: Any, split: list[dict[str, Any]]) -> list[Any]:
    return [f["labels"] if not task.is_token_task else [t for t in f["labels"] if t != -100] for f in split]


class _Loop:
    """The epochs of one run: optimiser steps, method hooks, dev evaluations at the scheduled steps."""

    def __init__(self, model: TaskModel, method: Method, task: Any, data: dict[str, Any], config: TrainConfig,
                 pad_id: int, autocast: Any, optimizer: torch.optim.Optimizer, scheduler: Any, points: list[int],
                 steps_per_epoch: int, on_eval: Callable[[int, dict[str, float]], Any] | None) -> None:
        self.model, self.method, self.task, self.data, self.config = model, method, task, data, config
        self.pad_id, self.autocast, self.optimizer, self.scheduler = pad_id, autocast, optimizer, scheduler
        self.points, self.steps_per_epoch, self.on_eval = points, steps_per_epoch, on_eval
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.device = next(model.parameters()).device

    def run(self, epochs: int, generator: torch.Generator) -> _Progress:
        p = _Progress()
        lengths = [len(f["input_ids"]) for f in self.data["train"]]
        for epoch in range(epochs):
            start, evaluating = time.perf_counter(), p.eval_seconds
            self.method.on_epoch_start(self.model, epoch)
            self.model.train()
            p.sums, p.logs, p.epoch_steps = {}, {}, 0
            order = batching.batch_order(lengths, self.config.batch_size, generator, self.config.length_grouping)
            bar = tqdm(batching.iterate(self.data["train"], order, self.pad_id, self.device), total=len(order),
                       leave=False, desc=f"epoch {epoch + 1}/{epochs}", disable=None)
            stop = False
            for batch in bar:
                self._step(batch, p)
                if p.step in self.points and (stop := self._evaluate(p)):
                    break
            bar.close()
            p.losses.append(_epoch_loss(p.sums, p.logs, p.epoch_steps))
            # training time only: a dev evaluation inside the epoch is counted in eval_seconds, as before
            p.epoch_seconds.append(time.perf_counter() - start - (p.eval_seconds - evaluating))
            if stop or not self._finite(p):  # an epoch without an evaluation point can diverge too
                break
        return p

    def _finite(self, p: _Progress) -> bool:
        if all(math.isfinite(float(v)) for v in p.sums.values()):
            return True
        if p.status == "ok":
            epoch = math.ceil(p.step / self.steps_per_epoch)
            p.status, p.error = "diverged", f"non-finite training loss before step {p.step} (epoch {epoch})"
        return False

    def _step(self, batch: dict[str, torch.Tensor], p: _Progress) -> None:
        with self.autocast():
            outputs = self.model(**batch)
            terms = {"task": self.model.task_loss(outputs.logits, batch["labels"])}
            terms.update(self.method.loss(self.model, batch, outputs))
        loss = cast(torch.Tensor, sum(terms.values()))
        loss.backward()
        self.method.after_backward(self.model)
        if self.config.max_grad_norm > 0:
            clip_gradients(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_step(self.model)
        for name, value in terms.items():
            p.sums[name] = p.sums.get(name, 0.0) + value.detach().float()
        for name, logged in self.method.logs.items():
            p.logs[name] = p.logs.get(name, 0.0) + logged
        self.method.logs = {}  # a method reports per step; nothing stale is counted twice
        p.seen += batch["input_ids"].shape[0]
        p.tokens += int(batch["attention_mask"].sum())
        p.step += 1
        p.epoch_steps += 1

    def _evaluate(self, p: _Progress) -> bool:
        """Evaluate dev at a scheduled step; True stops training (divergence or the pruner's verdict)."""
        if not self._finite(p):
            return True
        tick = time.perf_counter()
        dev = evaluate_split(self.model, self.task, self.data["dev"], self.config, self.pad_id, self.autocast)
        p.eval_seconds += time.perf_counter() - tick
        epoch = p.step / self.steps_per_epoch
        epoch = int(epoch) if epoch == int(epoch) else round(epoch, 4)
        point = {"epoch": epoch, "dev_primary": dev.metrics["primary"],
                 **{f"dev/{k}": v for k, v in dev.metrics.items()}}
        p.curve.append(point)
        if p.best_dev is None or _better(dev.metrics["primary"], p.best_dev.metrics["primary"]):
            p.best_state, p.best_epoch, p.best_dev = snapshot(self.model, p.best_state), epoch, dev
        # A truthy answer stops training here (a pruner's verdict); the best evaluation so far still counts.
        loss = _epoch_loss(p.sums, p.logs, p.epoch_steps)  # this epoch's mean so far
        if self.on_eval and self.on_eval(len(p.curve), epoch_metrics(loss, point)):
            p.stopped_at = epoch
            return True
        return False


def _epoch_loss(sums: dict[str, Any], logs: dict[str, float], steps: int) -> dict[str, float]:
    loss = {f"loss/{k}": float(v) / steps for k, v in sums.items()}
    loss.update({f"method/{k}": v / steps for k, v in logs.items()})
    return loss


def evaluate_split(model: TaskModel, task: Any, split: list[dict[str, Any]], config: TrainConfig, pad_id: int,
                   autocast: Callable[[], contextlib.AbstractContextManager]) -> EvalResult:
    """Score ``model`` on ``split`` in length-sorted batches (little padding) on the model's device."""
    order = batching.eval_order([len(f["input_ids"]) for f in split], config.eval_batch_size)
    batches = batching.iterate(split, order, pad_id, next(model.parameters()).device)
    return evaluate_model(model, task, batches, autocast)


def score_test_set(model: TaskModel, task: Any, test_set: list[dict[str, Any]], config: TrainConfig, pad_id: int,
                   result: TrainResult) -> TrainResult:
    """``result`` with the test set scored on the selected, finalized checkpoint ``model`` holds, and the run judged.

    A run *fails* when its test score is not above the majority-class predictor's on the same (clean) test set
    (regression: a correlation ≤ 0 or NaN; token tasks: no better than "O" everywhere). Judged on the clean test set,
    not the (possibly noisy, 32-example) dev set, so the verdict measures the method, not the noise draw; it is
    reported, never used for selection. A diverged run keeps ``diverged`` (the leaderboard scores a diverged run
    without a test score at ``majority_test``)."""
    extra = {**result.extra, "majority_test": majority_baseline(task, _references(task, test_set))}
    if result.best_epoch is None:
        return dataclasses.replace(result, extra=extra)
    tick = time.perf_counter()
    test = evaluate_split(model, task, test_set, config, pad_id, autocast_factory(resolve_device(config.device),
                                                                                  config.precision))
    status = result.status
    if status == "ok" and is_failed(task, test.metrics["primary"], extra["majority_test"]):
        status = "failed"
    return dataclasses.replace(result, test=test, status=status, extra=extra,
                               eval_seconds=result.eval_seconds + time.perf_counter() - tick)


def epoch_metrics(loss: dict[str, float], point: dict[str, Any]) -> dict[str, float]:
    """What an epoch reports (to MLflow, to the pruner): its mean loss terms and its dev scores."""
    return {**loss, **{k: v for k, v in point.items() if k != "epoch"}}


def snapshot(model: torch.nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """A copy of the model's state, written into the previous snapshot's tensors when there is one.

    Reusing the buffers spares a fresh ~90 MB allocation (and its page faults) each time the dev score improves."""
    state = model.state_dict()
    if into is None or into.keys() != state.keys():
        return {key: value.detach().clone() for key, value in state.items()}
    for key, value in state.items():
        into[key].copy_(value)
    return into


def _better(candidate: float, incumbent: float) -> bool:
    # Strictly better only: ties keep the earlier epoch (less training, the conservative choice). NaN never wins.
    return not math.isnan(candidate) and (math.isnan(incumbent) or candidate > incumbent)


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> None:
    """``clip_grad_norm_``, minus its multiply by 1.0 when nothing is clipped (bit-identical: x·1.0 = x).

    PyTorch always multiplies to avoid a device sync; on the CPU the check is free, and the skipped pass over every
    gradient is a measurable share of a MiniLM step (results/perf/loop.md). Elsewhere the stock behaviour is kept."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.nn.utils.get_total_norm(grads)
    if total.device.type != "cpu" or float(torch.clamp(max_norm / (total + 1e-6), max=1.0)) != 1.0:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)


def _build_optimizer(groups: list[dict[str, Any]], lr: float, device: torch.device) -> torch.optim.Optimizer:
    """PyTorch's AdamW (bias-corrected). The fused kernel is faster on the CPU and numerically the same update."""
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("the method left no trainable parameters for the optimiser")
    return torch.optim.AdamW(groups, lr=lr, fused=device.type in ("cpu", "cuda"))


class _Reiterable:
    """An iterable that starts a fresh pass each time it is iterated (methods may need several passes)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __iter__(self):
        return iter(self._make())

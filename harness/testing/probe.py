"""Instrumented training runs for the conformance suite: a method trained through the real loop on the tiny
random BERT with small synthetic in-memory tasks (one per task type), its hooks wrapped to observe gradients, frozen
modules and per-step loss terms without changing the run. ``harness.testing.conformance`` turns these runs into checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from regbench.benchmarks.taskspec import TaskSpec

from ..run.method import Method, get_method
from ..run.model import TINY_MODEL, TaskModel, load_pretrained
from ..run.train import TrainConfig, TrainResult, train

SEED = 7
TASK_TYPES = ("classification", "regression", "token_classification")
SIZES = {"train": 16, "dev": 8, "test": 8}
TRAIN_CONFIG = TrainConfig(epochs=2, batch_size=8, lr=1e-3, eval_batch_size=8, device="cpu", precision="fp32")
_LABELS = ("O", "B-X", "I-X")


# ---- synthetic tasks ------------------------------------------------------------------------------------------
def synthetic_task(task_type: str) -> TaskSpec:
    """A minimal in-memory TaskSpec of the given type (no data source is ever read)."""
    metrics, primary = {"classification": (("accuracy",), ("accuracy",)),
                        "regression": (("pearsonr",), ("pearson",)),
                        "token_classification": (("seqeval",), ("f1",))}[task_type]
    return TaskSpec(name=f"conformance_{task_type}", version=1, type=task_type, source={"mirror": "none"},
                    splits={"train": "train", "test": "test"}, label_column="label", metrics=metrics, primary=primary,
                    text_columns=("text",), tokens_column="tokens" if task_type == "token_classification" else None,
                    num_labels=3 if task_type != "regression" else 1,
                    label_names=_LABELS if task_type == "token_classification" else ())


def synthetic_data(task_type: str) -> dict[str, list[dict[str, Any]]]:
    """Random token sequences of varied length (so padding and length grouping are exercised), fixed labels."""
    generator = torch.Generator().manual_seed(0)
    features: list[dict[str, Any]] = []
    idx = 0
    data: dict[str, list[dict[str, Any]]] = {}
    for split, size in SIZES.items():
        features = []
        for _ in range(size):
            length = int(torch.randint(3, 15, (1,), generator=generator))
            words = torch.randint(1000, 8000, (length,), generator=generator).tolist()
            ids = [101, *words, 102]
            if task_type == "token_classification":
                tags = torch.randint(0, len(_LABELS), (length,), generator=generator).tolist()
                label: Any = [-100, *tags, -100]
            elif task_type == "regression":
                label = float(torch.rand((), generator=generator)) * 5
            else:
                label = idx % 3
            features.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids),
                             "idx": idx, "labels": label})
            idx += 1
        data[split] = features
    return data


# ---- instrumented runs ----------------------------------------------------------------------------------------
@dataclass
class ProbeRun:
    task: TaskSpec
    result: TrainResult
    model: TaskModel  # after finalize
    method: Method
    step_terms: list[dict[str, float]]  # "task" plus the method's terms, per optimiser step
    problems: list[str]  # gradient / frozen-module violations seen during training
    frozen_checked: int = 0
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Instrument:
    """Wraps a method instance's hooks to observe a run without changing it (no extra random draws)."""

    def __init__(self, method: Method) -> None:
        self.method, self.ctx = method, None
        self.steps: list[dict[str, float]] = []
        self.problems: list[str] = []
        self.initial: dict[str, torch.Tensor] = {}
        self.frozen: list[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = []
        for hook in ("prepare", "loss", "after_backward", "finalize"):
            setattr(method, hook, functools.partial(getattr(self, f"_{hook}"), getattr(method, hook)))

    def _prepare(self, original: Callable, ctx: Any) -> None:
        original(ctx)
        self.ctx = ctx
        self.initial = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
        self.frozen = [(m, {k: v.detach().clone() for k, v in m.state_dict().items()})
                       for m in self.method.frozen_modules()]

    def _loss(self, original: Callable, model: TaskModel, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
        terms = original(model, batch, outputs)
        with torch.no_grad():  # the loop's own task term, recomputed: same op on the same tensors, same value
            task = model.task_loss(outputs.logits, batch["labels"])
        self.steps.append({"task": float(task), **{k: float(v.detach()) for k, v in terms.items()}})
        return terms

    def _after_backward(self, original: Callable, model: TaskModel) -> None:
        original(model)
        owned = _owned(self.method, self.ctx)
        for name, p in model.named_parameters():
            if p.grad is not None and id(p) not in owned:
                self._problem(f"parameter {name} gets a gradient but no optimiser owns it")
        self._check_frozen(changed_too=False)

    def _finalize(self, original: Callable, model: TaskModel) -> None:
        owned = _owned(self.method, self.ctx)
        for name, p in model.named_parameters():
            if name in self.initial and id(p) not in owned and not torch.equal(p.detach(), self.initial[name]):
                self._problem(f"parameter {name} changed but no optimiser owns it")
        self._check_frozen(changed_too=True)
        original(model)

    def _check_frozen(self, changed_too: bool) -> None:
        for i, (module, state) in enumerate(self.frozen):
            if module.training:
                self._problem(f"frozen module {i} ({type(module).__name__}) is in train mode")
            for name, p in module.named_parameters():
                if p.grad is not None:
                    self._problem(f"frozen module {i} parameter {name} has a gradient")
            if changed_too and any(not torch.equal(v, state[k]) for k, v in module.state_dict().items()):
                self._problem(f"frozen module {i} ({type(module).__name__}) changed during training")

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


def _owned(method: Method, ctx: Any) -> set[int]:
    """ids of the parameters of the main optimiser and of any optimiser the method holds as an attribute."""
    optimizers = [ctx.optimizer] if ctx is not None and ctx.optimizer is not None else []
    for value in vars(method).values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        optimizers += [v for v in items if isinstance(v, torch.optim.Optimizer)]
    return {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}


class Probe:
    """Instrumented training runs of one method (built from its defaults or ``params``), memoised per task type."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.name, self.params = name, dict(params or {})
        self._runs: dict[str, ProbeRun] = {}

    def run(self, task_type: str = "classification", fresh: bool = False) -> ProbeRun:
        if fresh or task_type not in self._runs:
            run = self._train(task_type)
            if fresh:
                return run
            self._runs[task_type] = run
        return self._runs[task_type]

    def _train(self, task_type: str) -> ProbeRun:
        pretrained = load_pretrained(TINY_MODEL)
        task, data = synthetic_task(task_type), synthetic_data(task_type)
        method = get_method(self.name, self.params)
        instrument = _Instrument(method)
        torch.manual_seed(SEED)  # as harness.api.run: dropout and anything the method draws from the global stream
        model = TaskModel(pretrained, task.type, task.num_labels, head_seed=SEED)
        result = train(model, method, task, data, TRAIN_CONFIG, SEED, pretrained.tokenizer.pad_token_id)
        return ProbeRun(task, result, model, method, instrument.steps, instrument.problems, len(instrument.frozen),
                        data)

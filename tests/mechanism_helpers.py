"""Shared pieces of the mechanism tests (tests/test_mechanisms*.py): a tiny model, a batch, a prepared method,
one optimiser step through the real loop, and reference formulas written independently of the method modules
(a test that reused a module's own helper would pass with that helper broken)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
from transformers import AutoModel, BertConfig

from regbench.harness.run import batching
from regbench.harness.run.method import Method, TrainContext, get_method
from regbench.harness.run.model import TINY_MODEL, Pretrained, TaskModel, load_pretrained
from regbench.harness.run.train import TrainConfig, train
from regbench.harness.testing.probe import synthetic_data, synthetic_task

SEED = 11
LR = 1e-3
# No warm-up and no decay: the first step runs at the full learning rate, so Adam's first update of an entry
# is ±lr (m̂/√v̂ = g/|g|) and an update's size reads off the learning rate that produced it.
ONE_STEP = TrainConfig(
    epochs=1,
    batch_size=8,
    lr=LR,
    eval_batch_size=8,
    device="cpu",
    precision="fp32",
    warmup_ratio=0.0,
    weight_decay=0.0,
)


def pad_id() -> int:
    return load_pretrained(TINY_MODEL).tokenizer.pad_token_id


def deeper_pretrained(layers: int) -> Pretrained:
    """A random BERT as wide as the tiny one with ``layers`` layers (seeded): odd depths show arithmetic on the layer
    count that the tiny model's two layers (and MiniLM's six) hide; several layers give MVCR several AE layers."""
    tiny = load_pretrained(TINY_MODEL)
    config = BertConfig.from_dict({**tiny.config.to_dict(), "num_hidden_layers": layers})
    with torch.random.fork_rng():
        torch.manual_seed(1)
        state = AutoModel.from_config(config).state_dict()
    return Pretrained(f"random-bert-{layers}", config, state, tiny.tokenizer, "", "mean")


def tiny_model(task_type: str = "classification", dropout: float = 0.0, seed: int = SEED) -> TaskModel:
    task = synthetic_task(task_type)
    torch.manual_seed(seed)
    return TaskModel(load_pretrained(TINY_MODEL), task.type, task.num_labels, dropout=dropout, head_seed=seed)


def features(task_type: str = "classification") -> list[dict[str, Any]]:
    return synthetic_data(task_type)["train"]


def make_batch(task_type: str = "classification", rows: int = 8) -> dict[str, torch.Tensor]:
    """The first ``rows`` training examples, padded (lengths vary, so padding is exercised)."""
    return batching.collate(features(task_type)[:rows], pad_id())


class _Batches:
    """A re-iterable pass over the training data, as the loop hands it to ``prepare``."""

    def __init__(self, task_type: str) -> None:
        self.task_type = task_type

    def __iter__(self):
        feats = features(self.task_type)
        order = [list(range(i, min(i + 8, len(feats)))) for i in range(0, len(feats), 8)]
        return iter(batching.iterate(feats, order, pad_id(), torch.device("cpu")))


def context(
    model: TaskModel,
    task_type: str = "classification",
    lr: float = LR,
    total_steps: int = 8,
    seed: int = SEED,
) -> TrainContext:
    return TrainContext(
        model,
        synthetic_task(task_type),
        _Batches(task_type),
        torch.device("cpu"),
        lr,
        total_steps,
        seed,
        autocast=contextlib.nullcontext,
    )


def prepared(
    name: str,
    params: dict[str, Any] | None = None,
    task_type: str = "classification",
    dropout: float = 0.0,
    lr: float = LR,
) -> tuple[Method, TaskModel]:
    """A method after ``num_epochs`` and ``prepare`` on a fresh tiny model, as the loop calls them."""
    model, method = tiny_model(task_type, dropout), get_method(name, params)
    method.num_epochs(1)
    method.prepare(context(model, task_type, lr))
    return method, model


class _Stop(Exception):
    pass


def first_step(
    name: str, params: dict[str, Any] | None = None, config: TrainConfig = ONE_STEP, dropout: float = 0.0
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Method]:
    """The named parameters just before and just after the first optimiser step of the real loop.

    "Before" is taken at the first ``on_epoch_start`` (after ``prepare``: NoisyTune's noise, an injected
    module are part of the start); "after" right after the first ``after_step`` (a method's own optimiser has
    stepped too), then the run is stopped."""
    method, model = get_method(name, params), tiny_model(dropout=dropout)
    states: list[dict[str, torch.Tensor]] = []
    on_epoch_start, after_step = method.on_epoch_start, method.after_step

    def snapshot() -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    def start_spy(m, epoch):
        if not states:
            states.append(snapshot())
        on_epoch_start(m, epoch)

    def step_spy(m):
        after_step(m)
        states.append(snapshot())
        raise _Stop

    method.on_epoch_start, method.after_step = start_spy, step_spy
    data = synthetic_data("classification")
    with contextlib.suppress(_Stop):
        train(model, method, synthetic_task("classification"), data, config, SEED, pad_id())
    return states[0], states[1], method


def largest_update(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], names: list[str]
) -> float:
    """The largest |Δ| over the named tensors (Adam's first step moves entries with a gradient by the LR)."""
    return max(float((after[n] - before[n]).abs().max()) for n in names)


def with_config(config: TrainConfig, **changes: Any) -> TrainConfig:
    return dataclasses.replace(config, **changes)


# ---- reference formulas ------------------------------------------------------------------------------------
def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p) ‖ softmax(q)) summed over classes, averaged over rows, in float64."""
    log_p, log_q = p_logits.double().log_softmax(-1), q_logits.double().log_softmax(-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def spectral_norm(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().double(), ord=2))


class EmbeddingSpy:
    """Records the ``inputs_embeds`` of each extra forward run through ``forward_from_embeddings``."""

    def __init__(self, original) -> None:
        self.original, self.inputs = original, []

    def __call__(self, model, batch, embeds):
        self.inputs.append(embeds.detach().clone())
        out = self.original(model, batch, embeds)
        self.logits = out.logits
        return out

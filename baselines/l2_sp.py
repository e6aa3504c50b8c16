"""L2-SP: weight consolidation toward the pretrained encoder. Registered as ``l2-sp``.

    L = L_task + (α/2) · Σ_encoder ‖w − w0‖²

Reference: Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for Transfer Learning with Convolutional Networks"
(ICML 2018, arXiv 1802.01483); as a fine-tuning baseline for pretrained LMs ("WC") in REPINA (arXiv 2205.11603).

Design choices (METHODS.md leaves these to us; each is a config field):
- The penalty replaces AdamW's decay toward zero on the encoder: the encoder's decay group gets
  ``encoder_weight_decay`` (default 0). The new head keeps ordinary decay (the run's ``weight_decay``), and biases
  and LayerNorm weights get no AdamW decay, as in every method. "The same weight-decay settings as STD" therefore
  means ``encoder_weight_decay`` = the run's ``weight_decay``: then L2-SP with α = 0 is STD bit for bit (tested).
- The penalty covers every encoder parameter, biases and LayerNorm included (``penalize_bias_and_norm``), as the
  original L2-SP covers all pretrained weights; w0 is the encoder at the start of training (after anything the
  loop did before ``prepare``).
- Its gradient α(w − w0) is added to the parameter gradients in ``after_backward`` (before clipping, exactly where a
  loss term's gradient would be), with multi-tensor ops instead of an autograd graph over every weight. The value
  (α/2)Σ‖w − w0‖² is still reported as the loss term ``l2sp`` (computed once per step under ``no_grad``; its
  difference tensors are reused for the gradient). The differences go into buffers allocated once in ``prepare``:
  a fresh ``_foreach_sub`` result (91 MB for MiniLM) costs page faults every step, a large share of the
  penalty's cost (L2-SP's step vs STD's: results/perf/methods.md).
- The word-embedding matrix (half of MiniLM's encoder) is handled row-wise (``sparse_embedding_rows``, on by
  default; computation only, same training bit for bit — tested): a row whose token has not appeared in any batch
  yet has had zero gradient and, with no AdamW decay on it (``encoder_weight_decay`` = 0), has not moved — so
  w − w0 = 0 there and its penalty and gradient are exactly zero. Only the rows seen so far are subtracted, added
  to the gradient and counted; few-shot runs touch a few thousand of 30k rows, which roughly halves the
  penalty's cost over STD's step (the current ratio, row-wise: results/perf/methods.md). With encoder decay on,
  every row moves: the dense path.
- Parameters that get no task gradient this step (the pooler under mean/cls pooling) get no penalty gradient
  either, so they stay untouched exactly as under STD; they never leave w0, so their penalty is zero anyway.
- α defaults to 0.01, the log-midpoint of the search range ``log[1e-4, 1]``. The decoupled PriorWD variant is not
  implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from optuna.distributions import FloatDistribution

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import (
    Method,
    MethodConfig,
    TrainContext,
    _is_no_decay,
    decay_groups,
    hparam,
    register_method,
)
from regbench.harness.run.model import TaskModel, TaskOutput


@dataclass(frozen=True)
class L2SPConfig(MethodConfig):
    alpha: float = hparam(0.01, "α in (α/2)·Σ‖w − w0‖² over the encoder parameters")
    encoder_weight_decay: float = hparam(
        0.0, "AdamW decay toward zero on the encoder's weight matrices; 0 = the penalty replaces it (set it to the "
             "run's weight_decay to reproduce STD's decay settings)")
    penalize_bias_and_norm: bool = hparam(True, "also pull encoder biases and LayerNorm parameters toward w0")
    sparse_embedding_rows: bool = hparam(
        True, "compute the word embeddings' penalty over the rows of tokens seen so far only (the others are still "
              "w0 when encoder_weight_decay = 0); computation only, the same training")

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.encoder_weight_decay < 0:
            raise ConfigError(f"alpha and encoder_weight_decay must be ≥ 0: {self.alpha}, {self.encoder_weight_decay}")


@register_method
class L2SP(Method[L2SPConfig]):
    name = "l2-sp"
    summary = "Li et al. 2018: (α/2)·‖w − w0‖² toward the pretrained encoder instead of decay toward zero"
    config_class = L2SPConfig

    def __init__(self, config: L2SPConfig | None = None) -> None:
        super().__init__(config)
        self.params: list[torch.nn.Parameter] = []
        self.anchors: list[torch.Tensor] = []
        self._buffers: list[torch.Tensor] = []  # w − w0, rewritten every step
        self._penalized = False  # loss() computed w − w0 this step: after_backward adds its gradient
        self._rows: _SeenRows | None = None  # the word embeddings, when handled row-wise

    tuned = {"alpha": FloatDistribution(1e-4, 1.0, log=True)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        embeddings = ctx.model.encoder.get_input_embeddings().weight
        row_wise = self.config.sparse_embedding_rows and self.config.encoder_weight_decay == 0
        for name, param in ctx.model.encoder.named_parameters():
            if row_wise and param is embeddings:
                self._rows = _SeenRows(param)
            elif self.config.penalize_bias_and_norm or not _is_no_decay(name):
                self.params.append(param)
                self.anchors.append(param.detach().clone())
        self._buffers = [torch.empty_like(anchor) for anchor in self.anchors]

    def param_groups(self, model: TaskModel, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        # Encoder decay group first, then the rest's, then all no-decay parameters: the concatenated parameter order
        # equals STD's two groups (the loop clips over that order), which keeps α = 0 bit-identical to STD.
        encoder_ids = {id(p) for p in model.encoder.parameters()}
        named = list(model.named_parameters())
        encoder = decay_groups([(n, p) for n, p in named if id(p) in encoder_ids], self.config.encoder_weight_decay)
        rest = decay_groups([(n, p) for n, p in named if id(p) not in encoder_ids], weight_decay)
        no_decay = {"params": encoder[1]["params"] + rest[1]["params"], "weight_decay": 0.0, "name": "no_decay"}
        return [{**encoder[0], "name": "encoder_decay"}, {**rest[0], "name": "decay"}, no_decay]

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # the weights do not change before after_backward: these differences serve both
            for buffer, param, anchor in zip(self._buffers, self.params, self.anchors, strict=True):
                torch.sub(param, anchor, out=buffer)
            self._penalized = True
            norms = list(torch._foreach_norm(self._buffers))
            if self._rows is not None:
                norms.append(self._rows.difference(batch["input_ids"]).norm())
            squared = torch.stack(norms).float().pow(2).sum()
        return {"l2sp": 0.5 * self.config.alpha * squared}

    def after_backward(self, model: TaskModel) -> None:
        if not self._penalized:
            return
        used = [(p.grad, d) for p, d in zip(self.params, self._buffers, strict=True) if p.grad is not None]
        if used:
            grads, diffs = zip(*used, strict=True)
            torch._foreach_add_(list(grads), list(diffs), alpha=self.config.alpha)  # ∇ (α/2)‖w − w0‖² = α(w − w0)
        if self._rows is not None:
            self._rows.add_gradient(self.config.alpha)
        self._penalized = False

    def finalize(self, model: TaskModel) -> None:
        self.params, self.anchors, self._buffers, self._penalized = [], [], [], False  # release the pretrained copy
        self._rows = None


class _SeenRows:
    """w − w0 of an embedding matrix over the rows of the tokens seen so far (every other row is still w0)."""

    def __init__(self, weight: torch.nn.Parameter) -> None:
        self.weight, self.anchor = weight, weight.detach().clone()
        self.seen = torch.zeros(weight.shape[0], dtype=torch.bool, device=weight.device)
        self.rows: torch.Tensor | None = None
        self.diff: torch.Tensor | None = None

    def difference(self, input_ids: torch.Tensor) -> torch.Tensor:
        self.seen[input_ids.reshape(-1)] = True  # this batch's rows get a task gradient now, so they move next
        self.rows = self.seen.nonzero().squeeze(1)
        self.diff = self.weight.detach().index_select(0, self.rows) - self.anchor.index_select(0, self.rows)
        return self.diff

    def add_gradient(self, alpha: float) -> None:
        if self.weight.grad is not None and self.rows is not None and self.diff is not None:
            self.weight.grad.index_add_(0, self.rows, self.diff, alpha=alpha)
        self.rows = self.diff = None

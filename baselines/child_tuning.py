"""ChildTuning-D and ChildTuning-F: update only a "child network" of the encoder. Registered as ``childtuning-d`` and
``childtuning-f``.

Reference: Xu et al. 2021, "Raise a Child in Large Language Model: Towards Effective and Generalizable Fine-tuning"
(EMNLP 2021, arXiv 2109.05687); code: alibaba/AliceMind ``ChildTuning`` (``ChildTuningAdamW``, ``calculate_fisher``).

- **D** (task-driven): one pass over the training data before training accumulates the empirical Fisher
  information ``F = (1/N) Σ_batches g²`` of every masked parameter (``g`` = gradient of the batch's mean task loss);
  the global top-``p`` fraction of entries (one threshold over all masked tensors together) is the child network.
  In every step, gradients outside it are zeroed (not rescaled, as in the reference).
- **F** (task-free): every step, a fresh ``Bernoulli(p)`` mask per gradient entry; kept entries are rescaled by
  ``1/p`` (the reference's ``grad *= mask / p``), so the expected gradient is unchanged.

Design choices (METHODS.md leaves these to us):
- Masked parameters (``scope``): by default the Transformer layers' parameters, ``encoder.encoder.layer.*``: all
  their weights, biases and LayerNorm parameters. This is the reference's ``'layer' in name`` selection for D;
  embeddings, pooler and the head are never masked. ``scope="encoder"`` masks every encoder parameter (embeddings
  and pooler too), closer to the reference F, which masks every gradient; the new head is never masked in regbench
  (a fresh head with masked gradients only learns slower; it is not part of the pretrained "parent").
- The mask is applied in ``after_backward``, i.e. before gradient clipping; the reference masks inside the
  optimiser step, after clipping. Clipping therefore sees the masked (for F: rescaled) gradient norm here. Adam's
  moments see the masked gradient and decoupled weight decay still applies to every parameter, as in the reference.
- Fisher pass (D): the model in train mode (dropout on, as the reference's ``model.train()``) under a forked RNG,
  so the training run's dropout stream is the one STD gets; each parameter's gradient is clipped to norm
  ``fisher_grad_clip`` before squaring (the reference clips each tensor to ``max_grad_norm`` = 1; 0 = no clip).
  The top-``p`` selection is exact (``topk``: exactly ``round(p·n)`` entries, ties broken arbitrarily), where the
  reference's ``>= percentile`` may keep a few more on ties.
- F's masks come from the method's own generator on the run's device, seeded from the run seed. Each mask entry is
  one random byte compared with ``round(256·p)``: one 64-bit draw gives eight entries, where ``bernoulli_`` makes a
  float per entry — several times cheaper for the 17.7M MiniLM layer entries masked every step (ChildTuning-F's
  step vs STD's: results/perf/methods.md). The keep probability is therefore ``p`` rounded to a multiple of 1/256
  (at most 0.002 off), and kept entries are rescaled by the inverse of that realised probability, so the expected
  gradient is still unchanged.
- ``p`` (the reserve fraction) is searched in ``[0.1, 0.5]``; default 0.3, the midpoint.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from optuna.distributions import FloatDistribution
from torch import nn

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, private_generator, register_method
from regbench.harness.run.model import TaskModel

__all__ = ["ChildTuningConfig", "ChildTuningD", "ChildTuningDConfig", "ChildTuningF", "fisher_information",
           "keep_threshold", "masked_parameters", "random_bytes",
           "top_fraction_masks"]

SCOPES = ("layers", "encoder")
_SEED_SALT = 0x0C71


@dataclass(frozen=True)
class ChildTuningConfig(MethodConfig):
    p: float = hparam(0.3, "reserve fraction: share of gradient entries kept (D: top Fisher; F: Bernoulli(p))")
    scope: str = hparam("layers", "masked parameters: 'layers' (encoder.encoder.layer.*) or 'encoder' (all of it)")

    def __post_init__(self) -> None:
        if not 0 < self.p <= 1:
            raise ConfigError(f"childtuning: p must be in (0, 1], got {self.p}")
        if self.scope not in SCOPES:
            raise ConfigError(f"childtuning: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")


@dataclass(frozen=True)
class ChildTuningDConfig(ChildTuningConfig):
    fisher_grad_clip: float = hparam(1.0, "clip each tensor's gradient to this norm before squaring it (0 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fisher_grad_clip < 0:
            raise ConfigError(f"childtuning: fisher_grad_clip must be ≥ 0, got {self.fisher_grad_clip}")


def masked_parameters(model: TaskModel, scope: str) -> dict[str, nn.Parameter]:
    """The parameters a ChildTuning mask covers, by name (never the head)."""
    prefix = "encoder.encoder.layer." if scope == "layers" else "encoder."
    chosen = {n: p for n, p in model.named_parameters() if n.startswith(prefix) and p.requires_grad}
    if not chosen:
        raise ConfigError(f"childtuning: no parameter of the model matches scope {scope!r} ({prefix}*)")
    return chosen


def fisher_information(model: TaskModel, batches: Iterable[dict[str, torch.Tensor]], params: dict[str, nn.Parameter],
                       grad_clip: float, autocast: Callable | None = None) -> dict[str, torch.Tensor]:
    """Empirical Fisher ``(1/N) Σ g²`` per entry of ``params`` over one pass of ``batches``; leaves no gradients."""
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    count = 0
    model.train()
    for batch in batches:
        with autocast() if autocast else contextlib.nullcontext():
            outputs = model(**batch)
            loss = model.task_loss(outputs.logits, batch["labels"])
        loss.backward()
        for name, param in params.items():
            if param.grad is not None:
                if grad_clip > 0:
                    nn.utils.clip_grad_norm_(param, grad_clip)
                fisher[name] += param.grad.float().pow(2)
        model.zero_grad(set_to_none=True)
        count += 1
    return {n: f / max(count, 1) for n, f in fisher.items()}


def top_fraction_masks(scores: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """Boolean masks keeping exactly ``round(p·n)`` entries, the largest over all tensors together."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, round(p * flat.numel()), sorted=False).indices] = True
    parts = keep.split([s.numel() for s in scores.values()])
    return {name: part.view_as(scores[name]) for name, part in zip(scores, parts, strict=True)}


class _ChildTuning(Method[ChildTuningConfig]):
    config_class = ChildTuningConfig

    def __init__(self, config: ChildTuningConfig | None = None) -> None:
        super().__init__(config)
        self.params: dict[str, nn.Parameter] = {}

    tuned = {"p": FloatDistribution(0.1, 0.5)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        self.params = masked_parameters(ctx.model, self.config.scope)

    def finalize(self, model: TaskModel) -> None:
        self.params = {}


@register_method
class ChildTuningD(_ChildTuning):
    name = "childtuning-d"
    summary = "Xu et al. 2021: update only the top-p Fisher entries of the encoder layers (one Fisher pass)"
    config_class = ChildTuningDConfig
    config: ChildTuningDConfig

    def __init__(self, config: ChildTuningDConfig | None = None) -> None:
        super().__init__(config)
        self.masks: dict[str, torch.Tensor] = {}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        cuda = [] if ctx.device.type != "cuda" else [ctx.device.index if ctx.device.index is not None
                                                        else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda):  # the Fisher pass's dropout does not shift the training stream
            fisher = fisher_information(ctx.model, ctx.train_batches, self.params, self.config.fisher_grad_clip,
                                        ctx.autocast)
        self.masks = top_fraction_masks(fisher, self.config.p)

    def after_backward(self, model: TaskModel) -> None:
        for name, param in self.params.items():
            if param.grad is not None:
                param.grad.mul_(self.masks[name])

    def finalize(self, model: TaskModel) -> None:
        super().finalize(model)
        self.masks = {}


@register_method
class ChildTuningF(_ChildTuning):
    name = "childtuning-f"
    summary = "Xu et al. 2021: a fresh Bernoulli(p) gradient mask over the encoder layers each step, rescaled by 1/p"

    def __init__(self, config: ChildTuningConfig | None = None) -> None:
        super().__init__(config)
        self.generator: torch.Generator | None = None

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        self.generator = private_generator(ctx.seed, _SEED_SALT, ctx.device)

    def after_backward(self, model: TaskModel) -> None:
        threshold = keep_threshold(self.config.p)
        for param in self.params.values():
            if param.grad is not None and self.generator is not None:
                keep = random_bytes(param.grad.numel(), self.generator).view_as(param.grad) < threshold
                param.grad.mul_(keep).mul_(256 / threshold)


def keep_threshold(p: float) -> int:
    """A byte below this keeps its entry: probability ``threshold / 256``, the closest to ``p`` (at least 1/256)."""
    return min(256, max(1, round(256 * p)))


def random_bytes(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniform random bytes (uint8) on the generator's device, eight from each 64-bit draw."""
    words = torch.randint(-(2**63), 2**63 - 1, (-(-n // 8),), dtype=torch.int64, generator=generator,
                          device=generator.device)
    return words.view(torch.uint8)[:n]

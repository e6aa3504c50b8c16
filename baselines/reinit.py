"""Re-init: re-initialise the top L Transformer layers (and the pooler) before fine-tuning. Registered as ``reinit``.

Reference: Zhang et al. 2021, "Revisiting Few-sample BERT Fine-tuning" (ICLR 2021, arXiv 2006.05987; code
asappresearch/revisiting-bert-ft, ``--reinit_layers``, ``--reinit_pooler``): the top layers are too specialised to
the pre-training objective, so they restart from the model's initialisation while the lower layers keep theirs.

Design choices (METHODS.md gives only L ∈ {1, 2, 3} and "+ pooler"):
- "The model's own init": the encoder's ``_init_weights`` (HF ``PreTrainedModel``; for BERT: Linear weights
  N(0, initializer_range), biases 0, LayerNorm weight 1 and bias 0) applied to every sub-module of the re-initialised
  layers and of the pooler (``reinit_pooler``, on by default, as the reference; skipped when the encoder has none).
- Seeded and device-independent: the init runs on a CPU copy of those modules under a forked CPU RNG seeded from
  the run seed, and the values are copied into the model in ``prepare``. The global stream (dropout) is untouched,
  and CPU and GPU runs get the same weights. HF's "already initialised" flags are cleared on the copy first, so
  the init is never silently skipped.
- Everything else (lower layers, embeddings, head) is not touched; training is STD's.
- L defaults to 2, the middle of the searched {1, 2, 3}; L larger than the encoder's depth is a ConfigError.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from optuna.distributions import IntDistribution
from torch import nn

from regbench.baselines.llrd import transformer_layers
from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, register_method
from regbench.harness.run.model import TaskModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ReInit", "ReInitConfig", "reinitialise_"]

_SEED_SALT = 0x7E11


@dataclass(frozen=True)
class ReInitConfig(MethodConfig):
    layers: int = hparam(2, "L: how many of the top Transformer layers to re-initialise")
    reinit_pooler: bool = hparam(True, "also re-initialise the pooler (when the encoder has one)")

    def __post_init__(self) -> None:
        if self.layers < 0:
            raise ConfigError(f"reinit: layers must be ≥ 0, got {self.layers}")


@torch.no_grad()
def reinitialise_(encoder: nn.Module, modules: list[nn.Module], seed: int) -> None:
    """Overwrite ``modules`` (parts of ``encoder``) with ``encoder._init_weights``, drawn from a CPU RNG seeded
    ``seed``."""
    copies = [copy.deepcopy(m).cpu() for m in modules]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for fresh in copies:
            for param in fresh.parameters():
                param._is_hf_initialized = False  # type: ignore[attr-defined]  # HF init skips tensors flagged as loaded
            for sub in fresh.modules():
                cast("PreTrainedModel", encoder)._init_weights(sub)
    for module, fresh in zip(modules, copies, strict=True):
        for target, value in zip(module.parameters(), fresh.parameters(), strict=True):
            target.copy_(value)


@register_method
class ReInit(Method[ReInitConfig]):
    name = "reinit"
    summary = "Zhang et al. 2021: re-initialise the top L Transformer layers and the pooler before fine-tuning"
    config_class = ReInitConfig

    tuned = {"layers": IntDistribution(1, 3)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        reinitialise_(ctx.model.encoder, self.targets(ctx.model), ctx.seed ^ _SEED_SALT)

    def targets(self, model: TaskModel) -> list[nn.Module]:
        """The modules to re-initialise: the top ``layers`` Transformer layers, then the pooler."""
        layers = transformer_layers(model)
        if self.config.layers > len(layers):
            raise ConfigError(f"reinit: layers={self.config.layers} but the encoder has only {len(layers)} layers")
        chosen = list(layers[len(layers) - self.config.layers:])
        pooler = getattr(model.encoder, "pooler", None)
        return chosen + ([pooler] if self.config.reinit_pooler and pooler is not None else [])

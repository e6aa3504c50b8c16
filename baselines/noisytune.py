"""NoisyTune: perturb the pretrained weights with matrix-wise scaled uniform noise before fine-tuning. Registered as
``noisytune``.

Reference: Wu et al. 2022, "NoisyTune: A Little Noise Can Help You Finetune Pretrained Language Models Better"
(ACL 2022, arXiv 2202.12024). Before training, every parameter tensor W gets

    W ← W + U(−λ/2, λ/2) · std(W)

with one uniform draw per entry and ``std(W)`` the tensor's own (unbiased) standard deviation, computed before it is
perturbed, as the reference snippet ``(torch.rand(size) − 0.5) · λ · torch.std(para)``. The perturbation's std is
``λ · std(W) / √12``.

Design choices (METHODS.md leaves these to us):
- Which tensors: every encoder parameter tensor (word/position/type embeddings, every Transformer layer's weights,
  biases and LayerNorm parameters, the pooler), as the reference loops over all named parameters. Tensors whose std
  is 0 (LayerNorm initialised to ones, zero biases) get no noise, as in the reference; single-entry tensors (no std)
  are skipped. The new head is not perturbed: it is random already, and noise scaled by its own std only changes
  its initialisation (``include_head`` turns it on, as the reference's loop over a classification model does).
  ``matrices_only`` restricts the noise to tensors with ≥ 2 dimensions (the paper's "parameter matrices").
- The noise is drawn on the CPU from the method's own generator seeded from the run seed (the global stream and thus
  dropout are unchanged, and CPU and GPU runs get the same perturbation), then added on the model's device, once, in
  ``prepare``. Nothing changes after that: training is STD's.
- λ is searched in ``[0.05, 0.3]``; default 0.15, the reference's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from optuna.distributions import FloatDistribution
from torch import nn

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, private_generator, register_method
from regbench.harness.run.model import TaskModel

__all__ = ["NoisyTune", "NoisyTuneConfig", "perturb_"]

_SEED_SALT = 0x4E75


@dataclass(frozen=True)
class NoisyTuneConfig(MethodConfig):
    noise_lambda: float = hparam(0.15, "λ: noise U(−λ/2, λ/2) · std(W) is added to each parameter tensor W")
    matrices_only: bool = hparam(False, "perturb only tensors with ≥ 2 dims (not biases and LayerNorm parameters)")
    include_head: bool = hparam(False, "also perturb the freshly initialised head")

    def __post_init__(self) -> None:
        if self.noise_lambda < 0:
            raise ConfigError(f"noisytune: noise_lambda must be ≥ 0, got {self.noise_lambda}")


@torch.no_grad()
def perturb_(param: torch.Tensor, noise_lambda: float, generator: torch.Generator) -> None:
    """``param += U(−λ/2, λ/2) · std(param)`` in place, the noise drawn on the CPU from ``generator``."""
    std = param.detach().float().std()
    noise = torch.rand(param.shape, generator=generator) - 0.5  # U(−1/2, 1/2)
    param.add_((noise.to(param.device) * (noise_lambda * std)).to(param.dtype))


@register_method
class NoisyTune(Method[NoisyTuneConfig]):
    name = "noisytune"
    summary = "Wu et al. 2022: add U(−λ/2, λ/2)·std(W) to each pretrained parameter tensor before training"
    config_class = NoisyTuneConfig

    tuned = {"noise_lambda": FloatDistribution(0.05, 0.3)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        generator = private_generator(ctx.seed, _SEED_SALT)
        for param in self.perturbed(ctx.model):
            perturb_(param, self.config.noise_lambda, generator)

    def perturbed(self, model: TaskModel) -> list[nn.Parameter]:
        """The tensors that get noise, in ``named_parameters`` order (the order fixes which draws each one gets)."""
        cfg = self.config
        modules = [model.encoder] + ([model.head] if cfg.include_head else [])
        return [p for module in modules for p in module.parameters()
                if p.numel() > 1 and (p.dim() >= 2 or not cfg.matrices_only)]

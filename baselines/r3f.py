"""R3F and R4F: noise on the token embeddings and a symmetric-KL smoothness term. Registered as ``r3f`` and ``r4f``.

    L = L_task(f(x)) + λ · [KL(f(x) ‖ f(x + z)) + KL(f(x + z) ‖ f(x))],   z ~ U(−ε, ε) or N(0, ε²)

Reference: Aghajanyan et al. 2021, "Better Fine-Tuning by Reducing Representational Collapse" (arXiv 2008.03156);
code: fairseq ``examples/rxf`` (criterion ``sentence_prediction_r3f``). R4F adds spectral normalisation of the head.

Design choices (where METHODS.md leaves them to us, or where we follow the reference code):
- The noise goes on the token (word) embeddings — the ``inputs_embeds`` slot of the HF encoder, before position and
  segment embeddings and the embedding LayerNorm — as fairseq adds it to ``embed_tokens`` before the positions. Every
  position gets noise, padding included (fairseq does; padding is masked out of attention and of the loss anyway).
- As in fairseq, the noisy forward starts from *detached* embeddings (the embedding table learns only through the
  clean path), and the symmetric KL keeps gradients through both distributions (no stop-gradient). The clean
  distribution is the loop's own forward, so R3F costs one extra forward/backward per step (measured cost:
  results/perf/methods.md).
- The divergence sums over classes and averages over examples (fairseq's ``sum / batch size``). Token tasks: per-token
  KL averaged over non-pad tokens (attention mask; special tokens included). Multiple choice: the distribution over
  choices. Regression: the mean squared difference of the two scalar outputs (symmetric by construction, no 2×).
- Dropout stays on in both forwards (train mode), as in fairseq; with dropout 0 and ε = 0 the term is exactly zero.
- The noise is drawn from the global torch random stream (like dropout), so a run is reproducible from its seed.
- Defaults: ε = 1e-5 (fixed, METHODS.md), uniform noise, λ = 1.0 (one of fairseq's grid values {0.1, 0.5, 1, 5};
  searched in ``log[0.1, 5]``).
- R4F: ``torch.nn.utils.parametrizations.spectral_norm`` (one power iteration per training forward) on every Linear
  of the head, applied in ``prepare`` so the optimiser sees the parametrized weight. Its random start vectors come
  from a forked RNG seeded with the run seed, so R4F does not shift the global stream that drives dropout and noise.
  ``finalize`` removes the parametrization keeping the normalised weight W/σ(W): the final head is a plain Linear
  with STD's state-dict keys, in STD's order. (For regression, σ of a 1×H matrix is its L2 norm: the head's weight
  vector is kept at unit norm.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from torch import nn
from torch.nn.utils import parametrize

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, register_method
from regbench.harness.run.model import TaskModel, TaskOutput

NOISE_TYPES = ("uniform", "normal")


# ---- divergences shared with SMART ------------------------------------------------------------------------------
def token_mask(model: TaskModel, outputs: TaskOutput) -> torch.Tensor | None:
    """Token tasks average over non-pad tokens; every other task type over examples (no mask)."""
    return outputs.attention_mask if model.task_type == "token_classification" else None


def kl_divergence(target: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(softmax(target) ‖ softmax(logits)) summed over classes, averaged over examples (or over mask = 1 tokens)."""
    log_p = torch.log_softmax(target.float(), dim=-1)
    log_q = torch.log_softmax(logits.float(), dim=-1)
    per_item = (log_p.exp() * (log_p - log_q)).sum(-1)
    if mask is None:
        return per_item.mean()
    weights = mask.to(per_item.dtype)
    return (per_item * weights).sum() / weights.sum().clamp(min=1.0)


def divergence(target: torch.Tensor, logits: torch.Tensor, task_type: str,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """One-sided divergence of ``logits`` from ``target``: KL, or the mean squared difference for regression."""
    if task_type == "regression":
        return nn.functional.mse_loss(logits.float(), target.float())
    return kl_divergence(target, logits, mask)


def symmetric_divergence(clean: torch.Tensor, noisy: torch.Tensor, task_type: str, mask: torch.Tensor | None,
                         stop_gradient: bool) -> torch.Tensor:
    """KL(clean ‖ noisy) + KL(noisy ‖ clean); ``stop_gradient`` detaches each target (SMART's reference does)."""
    if task_type == "regression":  # MSE is symmetric already: one term, gradients to both outputs
        return nn.functional.mse_loss(noisy.float(), clean.float())
    clean_target, noisy_target = (clean.detach(), noisy.detach()) if stop_gradient else (clean, noisy)
    return kl_divergence(clean_target, noisy, mask) + kl_divergence(noisy_target, clean, mask)


def forward_from_embeddings(model: TaskModel, batch: dict[str, torch.Tensor], embeds: torch.Tensor) -> TaskOutput:
    """The task model run on given token embeddings instead of ``input_ids`` (same mask and segment ids)."""
    return model(**{**batch, "input_ids": None, "inputs_embeds": embeds})


# ---- R3F / R4F ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class R3FConfig(MethodConfig):
    lam: float = hparam(1.0, "λ, weight of the symmetric-KL smoothness term (MSE for regression)")
    eps: float = hparam(1e-5, "ε, the noise scale: U(−ε, ε) or N(0, ε²) on the token embeddings")
    noise_type: str = hparam("uniform", "noise distribution: uniform | normal")

    def __post_init__(self) -> None:
        if self.noise_type not in NOISE_TYPES:
            raise ConfigError(f"noise_type must be one of {', '.join(NOISE_TYPES)}, got {self.noise_type!r}")
        if self.eps < 0 or self.lam < 0:
            raise ConfigError(f"eps and lam must be ≥ 0, got eps={self.eps}, lam={self.lam}")


@register_method
class R3F(Method[R3FConfig]):
    name = "r3f"
    relative_step_cost = 1.9  # a second forward/backward per step; the measured ratio: results/perf/methods.md
    summary = "Aghajanyan et al. 2021: symmetric KL between clean and token-embedding-noised outputs"
    config_class = R3FConfig

    tuned = {"lam": FloatDistribution(0.1, 5.0, log=True), "noise_type": CategoricalDistribution(NOISE_TYPES)}

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        with torch.no_grad():  # fairseq detaches: the noisy path does not train the embedding table
            embeds = model.embed(batch["input_ids"])
        noisy = forward_from_embeddings(model, batch, embeds + self._noise(embeds)).logits
        smooth = symmetric_divergence(outputs.logits, noisy, model.task_type, token_mask(model, outputs),
                                      stop_gradient=False)
        return {"r3f": self.config.lam * smooth}

    def _noise(self, like: torch.Tensor) -> torch.Tensor:
        if self.config.noise_type == "uniform":
            return torch.empty_like(like).uniform_(-self.config.eps, self.config.eps)
        return torch.randn_like(like) * self.config.eps


@register_method
class R4F(R3F):
    name = "r4f"
    summary = "R3F + spectral normalisation of the head's Linear layers (removed in finalize)"

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the power-iteration start vectors must not shift dropout's RNG
            torch.manual_seed(ctx.seed)
            for module in _head_linears(ctx.model):
                nn.utils.parametrizations.spectral_norm(module)

    def finalize(self, model: TaskModel) -> None:
        for module in _head_linears(model):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
                _restore_parameter_order(module)

    # R4F ends with a plain head, but the KL term and noise are R3F's: search space and config are inherited.


def _head_linears(model: TaskModel) -> list[nn.Linear]:
    return [m for m in model.head.modules() if isinstance(m, nn.Linear)]


def _restore_parameter_order(module: nn.Linear) -> None:
    """remove_parametrizations re-registers ``weight`` after ``bias``; put it back first so state-dict keys match."""
    if module.bias is not None:
        module._parameters["bias"] = module._parameters.pop("bias")

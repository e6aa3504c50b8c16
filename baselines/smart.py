"""SMART: smoothness-inducing adversarial regularisation on the embeddings. Registered as ``smart``.

    L = L_task(f(x)) + λ_s · KL_sym(f(x) ‖ f(x + δ)),   δ = one ascent step on KL(f(x) ‖ f(x + z)) from z ~ N(0, σ²)

Reference: Jiang et al. 2020, "SMART: Robust and Efficient Fine-Tuning for Pre-trained Natural Language Models
through Principled Regularized Optimization" (ACL 2020, arXiv 1911.03437); code: namisan/mt-dnn
``mt_dnn/perturbation.py`` (``SmartPerturbation``) and ``mt_dnn/loss.py`` (``SymKlCriterion``).

One step:
1. z = σ·N(0, I) on the embeddings, zeroed at padding (METHODS.md: "masked by attention");
2. forward from detached embeddings + z, KL(clean ‖ noisy) with the clean distribution detached, and its gradient g
   with respect to z only (``torch.autograd.grad``: no parameter gradient is accumulated);
3. δ = (z + η · g / (‖g‖∞ + ε)) · mask, with the L∞ norm taken per token over the hidden dimension (the reference's
   default ``norm_level`` 0), detached;
4. forward from embeddings + δ (embeddings not detached, as in the reference) and the smoothness loss
   KL(sg(clean) ‖ noisy) + KL(sg(noisy) ‖ clean): each direction stops the gradient of its target, as mt-dnn's
   ``SymKlCriterion`` does. Three forward passes per step (measured cost: results/perf/methods.md).

Design choices (where METHODS.md leaves them to us, or where we depart from the reference code):
- "Embeddings" are the token embeddings in the HF encoder's ``inputs_embeds`` slot (``TaskModel.embed``), where
  mt-dnn also injects the perturbed tensor (mt-dnn passes its full embedding output there, so positions are added a
  second time; we do not reproduce that).
- The ascent step follows the paper, z + η·ĝ with ĝ the L∞-normalised gradient. mt-dnn normalises (z + η·g) as a
  whole, which sets the perturbation's per-token L∞ norm to ≈ 1 whatever σ and η are; we keep σ and η meaningful.
- A non-finite g is not special-cased (mt-dnn returns 0): the loss turns non-finite and the loop marks the run
  diverged, which is what the records should show.
- Token tasks: per-token KL averaged over non-pad tokens; multiple choice: the distribution over choices;
  regression: the mean squared difference (ascent and smoothness). Dropout stays on (train mode) in every forward.
- Defaults: σ = 1e-5 and ε = 1e-6 (fixed, METHODS.md), λ_s = 1 (mt-dnn's ``adv_alpha``; log-midpoint of
  ``log[0.1, 10]``), η = 1e-4 (log-midpoint of the search range ``log[1e-5, 1e-3]``).
- The Bregman proximal point term (μ · KL_sym(f_θ(x) ‖ f_θ̃(x)) with a momentum teacher θ̃ ← β θ̃ + (1 − β) θ after
  every step, teacher in eval mode, never given gradients) is implemented but off by default (μ = 0): METHODS.md's
  comparison uses SMART's smoothness term only. With μ > 0 the teacher is a full model copy (memory) and adds a
  forward per step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from optuna.distributions import FloatDistribution

from regbench.baselines.r3f import divergence, forward_from_embeddings, symmetric_divergence, token_mask
from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, register_method
from regbench.harness.run.model import TaskModel, TaskOutput


@dataclass(frozen=True)
class SmartConfig(MethodConfig):
    lam: float = hparam(1.0, "λ_s, weight of the symmetric-KL smoothness term (MSE for regression)")
    step_size: float = hparam(1e-4, "η, size of the ascent step along the L∞-normalised gradient")
    noise_std: float = hparam(1e-5, "σ, std of the initial Gaussian noise on the embeddings")
    norm_eps: float = hparam(1e-6, "ε in g / (‖g‖∞ + ε), the normalisation's stabiliser")
    bregman_weight: float = hparam(0.0, "μ, weight of the Bregman proximal (momentum teacher) term; 0 = off")
    bregman_momentum: float = hparam(0.99, "β, EMA momentum of the Bregman teacher's parameters")

    def __post_init__(self) -> None:
        if min(self.lam, self.step_size, self.noise_std, self.norm_eps, self.bregman_weight) < 0:
            raise ConfigError("SMART's lam, step_size, noise_std, norm_eps and bregman_weight must be ≥ 0")
        if not 0 <= self.bregman_momentum <= 1:
            raise ConfigError(f"bregman_momentum must be in [0, 1], got {self.bregman_momentum}")


@register_method
class Smart(Method[SmartConfig]):
    name = "smart"
    relative_step_cost = 2.6  # three passes per step; the measured ratio: results/perf/methods.md
    summary = "Jiang et al. 2020: one L∞-normalised ascent step on embedding noise, symmetric-KL smoothness loss"
    config_class = SmartConfig

    def __init__(self, config: SmartConfig | None = None) -> None:
        super().__init__(config)
        self.teacher: TaskModel | None = None

    tuned = {"lam": FloatDistribution(0.1, 10.0, log=True),
             "step_size": FloatDistribution(1e-5, 1e-3, log=True)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        if self.config.bregman_weight > 0:
            self.teacher = copy.deepcopy(ctx.model).eval().requires_grad_(False)

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        mask = token_mask(model, outputs)
        pad_mask = batch["attention_mask"].unsqueeze(-1)
        embeds = model.embed(batch["input_ids"])
        delta = self._adversarial_noise(model, batch, embeds.detach(), outputs.logits.detach(), pad_mask, mask)
        noisy = forward_from_embeddings(model, batch, embeds + delta).logits
        smooth = symmetric_divergence(outputs.logits, noisy, model.task_type, mask, stop_gradient=True)
        terms = {"smart": self.config.lam * smooth}
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(**batch).logits
            bregman = symmetric_divergence(outputs.logits, target, model.task_type, mask, stop_gradient=False)
            terms["bregman"] = self.config.bregman_weight * bregman
        return terms

    def _adversarial_noise(self, model: TaskModel, batch: dict[str, torch.Tensor], embeds: torch.Tensor,
                           clean: torch.Tensor, pad_mask: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Gaussian start, then one ascent step on KL(clean ‖ noisy) along the per-token L∞-normalised gradient."""
        noise = (torch.randn_like(embeds) * self.config.noise_std * pad_mask).requires_grad_()
        noisy = forward_from_embeddings(model, batch, embeds + noise).logits
        (grad,) = torch.autograd.grad(divergence(clean, noisy, model.task_type, mask), noise)
        direction = grad / (grad.abs().amax(dim=-1, keepdim=True) + self.config.norm_eps)
        return ((noise + self.config.step_size * direction) * pad_mask).detach()

    def after_step(self, model: TaskModel) -> None:
        if self.teacher is None:
            return
        # θ̃ ← β θ̃ + (1 − β) θ (the SMART paper's momentum Bregman proximal point).
        with torch.no_grad():
            teacher: list[torch.Tensor] = list(self.teacher.parameters())
            student: list[torch.Tensor] = list(model.parameters())
            torch._foreach_mul_(teacher, self.config.bregman_momentum)
            torch._foreach_add_(teacher, student, alpha=1.0 - self.config.bregman_momentum)

    def finalize(self, model: TaskModel) -> None:
        self.teacher = None  # nothing of SMART stays attached to the model; free the copy

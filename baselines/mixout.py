"""Mixout: stochastically mix each weight with its pretrained target instead of dropping it. Registered as ``mixout``.

Reference: Lee, Cho & Kang 2020, "Mixout: Effective Regularization to Finetune Large-scale Pretrained Language
Models" (ICLR 2020, arXiv 1909.11299); code: the authors' ``mixout.py`` / ``MixLinear``.

In training, every Linear uses ``W̃ = t + m ⊙ (W − t) / (1 − p)`` with ``m ~ Bernoulli(1 − p)`` drawn once per
forward over the *input units* (one value per column of W, shared by every output row, as the reference's
``noise[0].bernoulli_(1 − p)`` repeated over rows). ``E[W̃] = W``; the gradient reaching W is ``m / (1 − p)`` times
the one reaching W̃, as in the reference's backward. In eval mode the layer is ``x Wᵀ + b`` with the trained W.

Design choices (METHODS.md fixes p's range and "dropout off"; the rest is ours):
- Which layers: every ``nn.Linear`` of the task model at ``prepare`` time: all encoder Linears (Q, K, V, attention
  output, FFN in/out, the pooler) and the head. Targets are the weights at ``prepare``: the pretrained weights for
  the encoder and, for the freshly initialised head, its own initial weights (as the reference does). Biases are
  not mixed (the reference's ``MixLinear`` passes the bias through).
- Dropout off: every ``nn.Dropout`` module's ``p`` is set to 0 in ``prepare`` (HF BERT reads attention dropout from
  its dropout module's ``p`` too, so this covers embeddings, attention, FFN and the head) and restored in
  ``finalize``. The run's ``--dropout`` therefore does not matter for Mixout.
- ``MixLinear`` subclasses ``nn.Linear`` and reuses the original ``weight``/``bias`` Parameter objects; the target is
  a non-persistent buffer. So state-dict keys, parameter order and parameter identity are those of STD during
  training, and ``finalize`` swaps each ``MixLinear`` back to a plain ``nn.Linear`` holding the trained parameters.
  With ``p = 0`` the forward is ``F.linear(x, W, b)`` exactly: Mixout 0 is STD with dropout 0 bit for bit (tested).
- Masks come from the method's own generator on the run's device, seeded from the run seed, so the global (dropout)
  stream is not shifted and runs are reproducible.
- ``p`` defaults to 0.5 (the midpoint of the searched ``[0.1, 0.9]``). ``apply_mixout`` / ``MixoutPlug`` are the
  reusable wrapping logic (``mvcr+mixout`` composes them with MVCR).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from optuna.distributions import FloatDistribution
from torch import nn

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, TrainContext, hparam, private_generator, register_method
from regbench.harness.run.model import TaskModel

__all__ = ["MixLinear", "Mixout", "MixoutConfig", "MixoutPlug", "apply_mixout", "mixout_generator"]

_SEED_SALT = 0x6D1C  # separates the mask stream from the other seeded streams of a run


class MixLinear(nn.Linear):
    """A Linear whose weight is mixed with ``target`` over input units in training (see the module docstring)."""

    target: torch.Tensor
    p: float
    generator: torch.Generator

    @classmethod
    def wrap(cls, linear: nn.Linear, p: float, generator: torch.Generator) -> MixLinear:
        weight = linear.weight
        # Built on the meta device: no fresh weights and no draw from the global RNG; the Parameters are reused.
        mix = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        mix.weight, mix.bias = weight, linear.bias
        mix.register_buffer("target", weight.detach().clone(), persistent=False)
        mix.p, mix.generator = p, generator
        mix.train(linear.training)
        return mix

    def unwrap(self) -> nn.Linear:
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight, linear.bias = self.weight, self.bias
        linear.train(self.training)
        return linear

    def mixed_weight(self) -> torch.Tensor:
        """``t + m ⊙ (W − t) / (1 − p)``, one Bernoulli(1 − p) value per input unit (column)."""
        keep = torch.empty(self.in_features, device=self.weight.device, dtype=self.weight.dtype)
        keep.bernoulli_(1.0 - self.p, generator=self.generator)
        return self.target + (self.weight - self.target) * (keep / (1.0 - self.p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return F.linear(x, self.weight, self.bias)  # the trained weight, exactly nn.Linear's forward
        return F.linear(x, self.mixed_weight(), self.bias)


class MixoutPlug:
    """What :func:`apply_mixout` changed in a model, to undo it with :meth:`remove`."""

    def __init__(self, model: nn.Module, dropouts: list[tuple[nn.Dropout, float]], wrapped: int) -> None:
        self.model, self.dropouts, self.wrapped = model, dropouts, wrapped

    def remove(self) -> int:
        """Swap every ``MixLinear`` back to a plain ``nn.Linear`` and restore dropout; returns how many were swapped."""
        swapped = 0
        for module in list(self.model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, MixLinear):
                    setattr(module, name, child.unwrap())
                    swapped += 1
        for dropout, p in self.dropouts:
            dropout.p = p
        self.dropouts = []
        return swapped


def mixout_generator(seed: int, device: torch.device) -> torch.Generator:
    return private_generator(seed, _SEED_SALT, device)


def apply_mixout(model: nn.Module, p: float, generator: torch.Generator) -> MixoutPlug:
    """Turn every plain ``nn.Linear`` of ``model`` into a :class:`MixLinear` toward its current weight; dropout off.

    Call it before the optimiser is built (the Parameters stay the same objects either way)."""
    if not 0 <= p < 1:
        raise ConfigError(f"mixout probability must be in [0, 1), got {p}")
    dropouts = [(m, m.p) for m in model.modules() if isinstance(m, nn.Dropout)]
    for dropout, _ in dropouts:
        dropout.p = 0.0
    wrapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.Linear:  # exact type: never wrap twice, leave custom Linear subclasses alone
                setattr(module, name, MixLinear.wrap(child, p, generator))
                wrapped += 1
    return MixoutPlug(model, dropouts, wrapped)


@dataclass(frozen=True)
class MixoutConfig(MethodConfig):
    p: float = hparam(0.5, "mixout probability: chance that an input unit's weights are replaced by the target's")

    def __post_init__(self) -> None:
        if not 0 <= self.p < 1:
            raise ConfigError(f"mixout: p must be in [0, 1), got {self.p}")


@register_method
class Mixout(Method[MixoutConfig]):
    name = "mixout"
    summary = "Lee et al. 2020: mix each Linear's weight with its pretrained target over input units, dropout off"
    config_class = MixoutConfig

    def __init__(self, config: MixoutConfig | None = None) -> None:
        super().__init__(config)
        self.plug: MixoutPlug | None = None

    tuned = {"p": FloatDistribution(0.1, 0.9)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        self.plug = apply_mixout(ctx.model, self.config.p, mixout_generator(ctx.seed, ctx.device))

    def finalize(self, model: TaskModel) -> None:
        if self.plug is not None:
            self.plug.remove()
            self.plug = None

"""MVCR + Mixout: the MVCR reference script's default setting. Registered as ``mvcr+mixout``.

Reference: Liu et al. 2022 (MVCR, arXiv 2211.08794; code DAMO-NLP-SG/MVCR), whose training script turns on Mixout
(Lee et al. 2020, arXiv 1909.11299) with p = 0.1 and sets dropout to 0. regbench reports plain ``mvcr`` and this
combination as separate methods (METHODS.md).

Composition, no copied logic: the method *is* :class:`regularizers.mvcr.MVCR` (every MVCR hyperparameter, hook
and design choice unchanged) plus :func:`baselines.mixout.apply_mixout` on the task model.

Design choices:
- Order: Mixout is applied first in ``prepare`` (every Linear of the encoder and head wrapped toward its current
  weight, every dropout module of the task model set to p = 0), then MVCR plugs its autoencoders. So the AEs are
  not Mixout-wrapped and keep their own ``ae_dropout`` (an MVCR hyperparameter, not the model's dropout).
  ``finalize`` reverses the order: MVCR unplugs, then Mixout swaps back to plain Linears and restores dropout.
- During MVCR's AE warm-up the PLM and head are frozen; their Mixout masks are still drawn (the forward is the
  mixed one), which changes nothing since their weights equal their targets then.
- ``mixout_p`` defaults to the reference script's 0.1 and is not searched: the search space is MVCR's.
"""

from __future__ import annotations

from dataclasses import dataclass

from regbench.baselines.mixout import MixoutPlug, apply_mixout, mixout_generator
from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import TrainContext, hparam, register_method
from regbench.harness.run.model import TaskModel
from regbench.regularizers.mvcr import MVCR, MVCRConfig


@dataclass(frozen=True)
class MVCRMixoutConfig(MVCRConfig):
    mixout_p: float = hparam(0.1, "Mixout probability on every Linear of the encoder and head (dropout is set to 0)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.mixout_p < 1:
            raise ConfigError(f"mvcr+mixout: mixout_p must be in [0, 1), got {self.mixout_p}")


@register_method
class MVCRMixout(MVCR):
    name = "mvcr+mixout"
    summary = "MVCR with Mixout 0.1 and dropout 0 (the MVCR reference script's default)"
    config_class = MVCRMixoutConfig
    config: MVCRMixoutConfig

    def __init__(self, config: MVCRMixoutConfig | None = None) -> None:
        super().__init__(config)
        self.mixout: MixoutPlug | None = None

    def prepare(self, ctx: TrainContext) -> None:
        self.mixout = apply_mixout(ctx.model, self.config.mixout_p, mixout_generator(ctx.seed, ctx.device))
        super().prepare(ctx)

    def finalize(self, model: TaskModel) -> None:
        super().finalize(model)
        if self.mixout is not None:
            self.mixout.remove()
            self.mixout = None

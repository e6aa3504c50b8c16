"""Freeze (linear probe): only the head trains, the encoder stays at its pretrained weights. Registered as ``freeze``.

The "minimal tuning" end of REPINA's Figure 1 (arXiv 2205.11603): no representation collapse by construction, limited
accuracy; the natural lower reference for the collapse metrics. The linear-probing half of LP-FT (Kumar et al. 2022,
arXiv 2202.10054).

Design choices (METHODS.md leaves these to us):
- The run's learning rate *is* the head's learning rate, searched in ``log[1e-3, 1e-1]`` instead of the shared
  range (a freshly initialised head needs a large LR; there is nothing else to train, so a second LR field would only
  give the tuner a parameter without effect). Everything else is the loop's recipe: AdamW, warm-up + linear decay,
  weight decay on the head's weight matrix, gradient clipping.
- The encoder is frozen with ``requires_grad = False`` in ``prepare`` (before the optimiser exists, so it owns only
  the head), which also skips the encoder's backward pass. ``finalize`` sets ``requires_grad`` back.
- The encoder stays in train mode (the loop owns train/eval mode), so its dropout is on while the head trains: the
  head sees features with the run's dropout, like every other method. Run with dropout 0 for a probe on fixed
  features.
"""

from __future__ import annotations

from optuna.distributions import FloatDistribution

from regbench.harness.run.method import Method, TrainContext, register_method
from regbench.harness.run.model import TaskModel

HEAD_LR_RANGE = FloatDistribution(1e-3, 1e-1, log=True)


@register_method
class Freeze(Method):
    name = "freeze"
    relative_step_cost = 0.35  # no encoder backward nor encoder update; the measured ratio: results/perf/methods.md
    summary = "linear probe: only the head trains (encoder frozen), head LR log[1e-3, 1e-1]"

    lr_range = HEAD_LR_RANGE

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        ctx.model.encoder.requires_grad_(False)

    def finalize(self, model: TaskModel) -> None:
        model.encoder.requires_grad_(True)

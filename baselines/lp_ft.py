"""LP-FT: linear probing, then full fine-tuning from the probed head. Registered as ``lp-ft``.

Reference: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution"
(ICLR 2022, arXiv 2202.10054); "TP" (two-stage) in REPINA's comparison (arXiv 2205.11603).

Stage 1 trains only the head with the encoder frozen; stage 2 fine-tunes everything, starting from that head.

Design choices (METHODS.md leaves these to us; numbers are config fields):
- The split is within the run's budget: stage 1 takes ``lp_fraction`` of the run's optimiser steps (rounded, at least
  one step when the fraction is > 0), stage 2 the rest, so LP-FT trains exactly as many steps as STD. The split is by
  steps, not whole epochs, so it also works with one epoch; dev evaluation and best-epoch selection are unchanged.
  Default 0.25: the probe is a convex problem on fixed features that a large LR solves in few steps, and most of the
  equal budget goes to fine-tuning, which is what is compared with STD.
- Stage-1 learning rate: the loop builds the main optimiser once, with one schedule that owns every group's LR, so
  it cannot give the head another LR for a while. Stage 1 therefore uses the method's own AdamW over the head
  (``head_lr``, searched in ``log[1e-3, 1e-1]``; the run's weight decay on the head's weight matrix; clipping at
  ``lp_max_grad_norm``), stepped in ``after_backward``; it then clears the head's gradients so the main optimiser,
  whose parameters are all gradient-free in stage 1, changes nothing. Stage 2 is the main optimiser as in STD; its
  Adam moments start fresh at the first stage-2 step (nothing was accumulated in stage 1).
- The encoder is frozen with ``requires_grad = False`` from the first epoch's start (after the optimiser was built
  over all parameters) until the last stage-1 step, which also skips its backward pass. It stays in train mode (the
  loop owns the mode), so its dropout is on in stage 1, as for every method.
- Schedules: each stage gets its own linear warm-up (``stage_warmup_ratio`` of its steps) and linear decay to zero,
  the loop's schedule shape, as if each were a separate run (Kumar et al. train the probe and the fine-tuning
  separately). For stage 2 the method overwrites the main groups' LRs after the loop's scheduler step
  (``initial_lr`` × its own factor); ``restart_schedule=False`` keeps the loop's single schedule instead (stage 2
  then starts part-way down its decay). With ``lp_fraction=0`` and the loop's warm-up ratio, LP-FT is STD bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from optuna.distributions import FloatDistribution
from transformers import get_linear_schedule_with_warmup

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import (
    Method,
    MethodConfig,
    TrainContext,
    decay_groups,
    hparam,
    linear_schedule_factor,
    register_method,
)
from regbench.harness.run.model import TaskModel


@dataclass(frozen=True)
class LPFTConfig(MethodConfig):
    head_lr: float = hparam(1e-2, "stage-1 (linear probe) learning rate of the head; the encoder is frozen")
    lp_fraction: float = hparam(0.25, "share of the run's optimiser steps spent in stage 1 (0 = STD, 1 = probe only)")
    stage_warmup_ratio: float = hparam(0.1, "linear warm-up over this fraction of each stage's own steps")
    lp_max_grad_norm: float = hparam(1.0, "gradient-norm clipping of the head in stage 1 (0 = off)")
    restart_schedule: bool = hparam(True, "stage 2 gets its own warm-up and decay; False = the loop's single schedule")

    def __post_init__(self) -> None:
        if not 0 <= self.lp_fraction <= 1 or not 0 <= self.stage_warmup_ratio < 1:
            raise ConfigError(f"lp_fraction must be in [0, 1] and stage_warmup_ratio in [0, 1), got "
                              f"{self.lp_fraction}, {self.stage_warmup_ratio}")
        if self.head_lr <= 0:
            raise ConfigError(f"head_lr must be > 0, got {self.head_lr}")


@register_method
class LPFT(Method[LPFTConfig]):
    name = "lp-ft"
    summary = "Kumar et al. 2022: train the head with the encoder frozen, then fine-tune everything from it"
    config_class = LPFTConfig

    def __init__(self, config: LPFTConfig | None = None) -> None:
        super().__init__(config)
        self.step, self.probe_steps, self.tune_steps = 0, 0, 0
        self.head_optimizer: torch.optim.Optimizer | None = None
        self.head_schedule: torch.optim.lr_scheduler.LRScheduler | None = None
        self.frozen: list[torch.nn.Parameter] = []

    tuned = {"head_lr": FloatDistribution(1e-3, 1e-1, log=True)}

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        fraction = self.config.lp_fraction
        self.probe_steps = min(ctx.total_steps, max(1 if fraction > 0 else 0, round(fraction * ctx.total_steps)))
        self.tune_steps = ctx.total_steps - self.probe_steps

    def param_groups(self, model: TaskModel, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        head_groups = [g for g in decay_groups(model.head.named_parameters(), weight_decay) if g["params"]]
        self.head_optimizer = torch.optim.AdamW(head_groups, lr=self.config.head_lr)
        self.head_schedule = get_linear_schedule_with_warmup(
            self.head_optimizer, _warmup(self.config.stage_warmup_ratio, self.probe_steps), self.probe_steps)
        return super().param_groups(model, lr, weight_decay)  # every parameter: stage 2 trains them all

    def phase_note(self, base_epochs: int) -> str:
        return (f"linear probe (head only, head_lr {self.config.head_lr:g}) for the first "
                f"{self.config.lp_fraction:.0%} of the same number of steps, then full fine-tuning")

    def on_epoch_start(self, model: TaskModel, epoch: int) -> None:
        if self.step < self.probe_steps and not self.frozen:
            self.frozen = [p for p in model.encoder.parameters() if p.requires_grad]
            for param in self.frozen:
                param.requires_grad_(False)

    def after_backward(self, model: TaskModel) -> None:
        if self.step >= self.probe_steps or self.head_optimizer is None or self.head_schedule is None:
            return
        head = [p for p in model.head.parameters() if p.grad is not None]
        if self.config.lp_max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(head, self.config.lp_max_grad_norm)
        self.head_optimizer.step()
        self.head_schedule.step()
        for param in head:  # the main optimiser also owns the head (for stage 2): it must not step it again
            param.grad = None

    def after_step(self, model: TaskModel) -> None:
        self.step += 1
        if self.step == self.probe_steps:
            self._unfreeze()
        if self.config.restart_schedule and self.step >= self.probe_steps:
            # Runs after the loop's scheduler step, so this LR is the one the next (stage-2) step uses.
            factor = linear_schedule_factor(self.step - self.probe_steps, self.tune_steps,
                                    _warmup(self.config.stage_warmup_ratio, self.tune_steps))
            for group in self.main_optimizer().param_groups:
                group["lr"] = group["initial_lr"] * factor

    def finalize(self, model: TaskModel) -> None:
        self._unfreeze()  # a run stopped during stage 1 still ends with a trainable model
        self.head_optimizer = self.head_schedule = None

    def _unfreeze(self) -> None:
        for param in self.frozen:
            param.requires_grad_(True)
        self.frozen = []


def _warmup(ratio: float, steps: int) -> int:
    return math.ceil(ratio * steps)  # as the loop rounds its own warm-up

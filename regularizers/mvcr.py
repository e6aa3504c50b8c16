"""MVCR: multi-view compressed representations (Liu et al. 2022, arXiv 2211.08794; code DAMO-NLP-SG/MVCR).

Random hierarchical autoencoders (HAEs, ``regularizers/_hae.py``) sit inside chosen transformer layers during
fine-tuning and are plugged out for inference: the final model has zero extra parameters and compute.

What it does, per METHODS.md (choices METHODS.md leaves to us are marked *choice*):
- Placement (reference code): inside the FFN output sub-layer, ``dropout(dense(x))`` → ``dropout(AE(·))`` →
  residual + LayerNorm; the AE plug replaces that sub-layer's dropout module (no hooks).
- Layers: the reference's 0-based {6, 8, 11} of 12 at relative positions ``floor(i·L/12)``, de-duplicated (6 layers →
  {3, 4, 5}; the 2-layer test model → {1}); ``n_layers_with_ae`` keeps the top-most ones.
- Three HAEs per layer, widths {128, 256, 512}·H/768 rounded to an even number ≥ 2 (*choice*: the sub-AEs halve
  them). Inner view (sub-AE 1, sub-AE 2, identity) uniform per HAE and forward; outer path per position shared
  across the batch: each HAE 1/(2N−1), identity (N−1)/(2N−1) — derived from N, so not separate fields.
- Training only: Gaussian noise (``noise_std``) on h at every position; eval mode is the identity (bit-identical).
- Reconstruction loss per layer: mean over its HAEs of the MSE(h_noisy, HAE(h_noisy)) on non-pad positions
  (*choice*: the reference includes padding). It is NOT a loss term for the loop (its backward would reach the PLM);
  it is logged as ``method/recon`` and its gradients are taken per layer with ``torch.autograd.grad`` w.r.t. that
  layer's AE parameters only, in ``loss`` (before the main step), then applied by a separate AdamW in
  ``after_step`` at ``ae_lr_multiplier`` × the base LR, constant (*choice*: the reference gives it no schedule), no
  clipping, ``ae_weight_decay`` (*choice*: PyTorch's AdamW default). One AdamW over all layers equals one per layer
  (Adam is per-parameter) and each layer's loss only reaches its own AEs.
- Phase 1 (AE warm-up): PLM and head frozen (``requires_grad`` off), the AEs' task-loss gradients dropped in
  ``after_backward``, so only the reconstruction loss trains them. Phase 2: everything, AEs included, trains on the
  task loss through the main optimiser (the AEs join its groups via ``param_groups``) plus the AE AdamW as above.
- Warm-up length (*choice*): ``max(min_warmup_epochs, round(fraction·E))`` for profile epochs E, fraction 4% for
  sequence tasks, 10% for token tasks, ADDED to E through ``num_epochs`` so the PLM trains the profile's E epochs
  like STD (taking them from E would leave 2 of 3 epochs). The loop asks ``num_epochs`` before ``prepare`` shows
  the task, so the added count uses the sequence fraction; token tasks take any larger token count from E (equal
  for E ≤ 14). Phase 2 restarts the main LR schedule (suite version 2; *choice*, the reference's schedule spans
  every epoch): from its first step the main groups follow the loop's own shape — linear warm-up over the run's
  ``warmup_ratio`` of phase 2's steps, then linear decay to zero — so the PLM gets the same schedule STD gets over
  its E epochs. Before, the loop's 10% warm-up fell inside the AE-only epoch and the PLM started at ~96% of the
  peak LR with fresh Adam moments. The AE warm-up is an extra phase (``pre_phase_epochs``): the loop evaluates dev
  only in phase 2, at the same points as every other method's main phase.
- The AEs are built from the run seed under a forked CPU RNG (the dropout stream is not shifted); the random views
  come from the method's own CPU generator. ``finalize`` = :func:`unplug` + restoring ``requires_grad``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from optuna.distributions import IntDistribution
from torch import nn

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import (
    Method,
    MethodConfig,
    TrainContext,
    hparam,
    linear_schedule_factor,
    private_generator,
    register_method,
)
from regbench.harness.run.model import TaskModel, TaskOutput
from regbench.regularizers._hae import HAE, AEPlug, unplug

__all__ = ["MVCR", "MVCRConfig", "ae_layers", "scaled_widths", "unplug", "warmup_epochs"]

_SEED_SALT = 0x3C5A  # separates the AE initialisation and view generator from the head's seed


@dataclass(frozen=True)
class MVCRConfig(MethodConfig):
    n_layers_with_ae: int = hparam(3, "how many of the AE layers to use, top-most first (1-3)")
    reference_layers: str = hparam("6,8,11", "0-based AE layers of a reference-depth model (comma-separated)")
    reference_depth: int = hparam(12, "depth the reference layers refer to (mapped by floor(i·L/depth))")
    hae_widths: str = hparam("128,256,512", "HAE bottleneck widths of one layer at the reference hidden size")
    reference_hidden: int = hparam(768, "hidden size the widths refer to (scaled by H / this)")
    ae_dropout: float = hparam(0.2, "dropout inside the HAEs (after the encoder and inside each sub-AE)")
    noise_std: float = hparam(0.002, "std of the Gaussian noise added to h in training")
    ae_lr_multiplier: float = hparam(50.0, "the AE optimiser's LR as a multiple of the base LR")
    ae_weight_decay: float = hparam(0.01, "weight decay of the AE optimiser (AdamW)")
    warmup_fraction_sequence: float = hparam(0.04, "AE warm-up epochs as a fraction of the profile's (sequence tasks)")
    warmup_fraction_token: float = hparam(0.10, "AE warm-up epochs as a fraction of the profile's (token tasks)")
    min_warmup_epochs: int = hparam(1, "at least this many AE warm-up epochs")

    def __post_init__(self) -> None:
        if not 1 <= self.n_layers_with_ae <= len(_ints(self.reference_layers)):
            raise ConfigError(f"mvcr: n_layers_with_ae must be in [1, {len(_ints(self.reference_layers))}]")
        if self.noise_std < 0 or self.ae_lr_multiplier <= 0 or not 0 <= self.ae_dropout < 1:
            raise ConfigError("mvcr: noise_std ≥ 0, ae_lr_multiplier > 0 and ae_dropout in [0, 1) are required")
        if self.min_warmup_epochs < 0 or min(_ints(self.hae_widths)) < 1:
            raise ConfigError("mvcr: min_warmup_epochs ≥ 0 and positive hae_widths are required")


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"mvcr: expected comma-separated integers, got {text!r}") from None


def ae_layers(depth: int, n_layers: int, reference: list[int], reference_depth: int) -> list[int]:
    """The reference layers mapped to ``depth`` layers, ascending and de-duplicated, top-most ``n_layers`` kept."""
    kept = sorted(reference)[-n_layers:]
    return sorted({i * depth // reference_depth for i in kept})


def scaled_widths(widths: list[int], hidden: int, reference_hidden: int) -> list[int]:
    """Widths scaled by ``hidden / reference_hidden``, rounded to an even number ≥ 2 (the sub-AEs halve them)."""
    return [max(2, 2 * round(w * hidden / reference_hidden / 2)) for w in widths]


def warmup_epochs(base_epochs: int, fraction: float, minimum: int) -> int:
    return max(minimum, int(fraction * base_epochs + 0.5))


@register_method
class MVCR(Method[MVCRConfig]):
    name = "mvcr"
    relative_step_cost = 1.3  # HAE forward/backward + their own gradient pass; measured: results/perf/methods.md
    summary = "Liu et al. 2022: random hierarchical autoencoders in chosen layers, plugged out for inference"
    config_class = MVCRConfig

    def __init__(self, config: MVCRConfig | None = None) -> None:
        super().__init__(config)
        self.ae_optimizer: torch.optim.Optimizer | None = None
        self.plugs: list[AEPlug] = []
        self.warmup = 0  # phase-1 epochs
        self._added = self._base = 0
        self._in_warmup = False
        self._step = self._main_start = self._main_steps = self._main_warmup = 0  # phase-2 LR schedule
        self._flags: list[tuple[nn.Parameter, bool]] = []  # non-AE parameters and their requires_grad at prepare
        self._grads: list[tuple[nn.Parameter, torch.Tensor | None]] = []  # this step's reconstruction gradients

    tuned = {"n_layers_with_ae": IntDistribution(1, 3)}

    def num_epochs(self, base_epochs: int) -> int:
        cfg = self.config
        self._base = base_epochs
        self._added = warmup_epochs(base_epochs, cfg.warmup_fraction_sequence, cfg.min_warmup_epochs)
        return base_epochs + self._added

    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        cfg, model = self.config, ctx.model
        token = model.task_type == "token_classification"
        fraction = cfg.warmup_fraction_token if token else cfg.warmup_fraction_sequence
        self.warmup = max(self._added, warmup_epochs(self._base, fraction, cfg.min_warmup_epochs))
        self._step, self._main_start = 0, min(ctx.total_steps, self.warmup * ctx.steps_per_epoch)
        self._main_steps = ctx.total_steps - self._main_start
        self._main_warmup = math.ceil(ctx.warmup_ratio * self._main_steps)  # as the loop rounds its warm-up
        self._flags = [(p, p.requires_grad) for p in model.parameters()]
        generator = private_generator(ctx.seed, _SEED_SALT)
        self.plugs = [self._plug(output, ctx.seed, i, generator) for i, output in self._ffn_outputs(model)]
        params = self.ae_parameters()
        # fused: the main optimiser's kernel, same update, and a cheaper MVCR step than the default (foreach) kernel
        self.ae_optimizer = torch.optim.AdamW(params, lr=ctx.lr * cfg.ae_lr_multiplier,
                                              weight_decay=cfg.ae_weight_decay,
                                              fused=ctx.device.type in ("cpu", "cuda"))

    def _ffn_outputs(self, model: TaskModel) -> list[tuple[int, nn.Module]]:
        layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
        if layers is None or not all(isinstance(getattr(lay.output, "dropout", None), nn.Dropout) for lay in layers):
            raise ConfigError("mvcr needs a BERT-style encoder (encoder.layer[i].output.dropout after the FFN)")
        cfg = self.config
        chosen = ae_layers(len(layers), cfg.n_layers_with_ae, _ints(cfg.reference_layers), cfg.reference_depth)
        return [(i, layers[i].output) for i in chosen]

    def _plug(self, output: nn.Module, seed: int, layer: int, generator: torch.Generator) -> AEPlug:
        cfg = self.config
        dense, dropout = cast(nn.Linear, output.dense), cast(nn.Dropout, output.dropout)  # _ffn_outputs checked
        hidden = dense.out_features
        widths = scaled_widths(_ints(cfg.hae_widths), hidden, cfg.reference_hidden)
        with torch.random.fork_rng(devices=[]):  # nn.Linear's default init, without moving the caller's CPU stream
            torch.default_generator.manual_seed((seed ^ _SEED_SALT) + layer)
            haes = [HAE(hidden, width, cfg.ae_dropout) for width in widths]
        plug = AEPlug(dropout, haes, cfg.noise_std, generator).to(dense.weight.device)
        output.dropout = plug
        return plug

    def ae_parameters(self, plug: AEPlug | None = None) -> list[nn.Parameter]:
        return [p for pl in ([plug] if plug else self.plugs) for p in pl.haes.parameters()]

    def pre_phase_epochs(self) -> int:
        return self.warmup

    def phase_note(self, base_epochs: int) -> str:
        added = warmup_epochs(base_epochs, self.config.warmup_fraction_sequence, self.config.min_warmup_epochs)
        return (f"{added} AE-only warm-up epoch(s) before the {base_epochs} main epochs (not evaluated); the main LR "
                "schedule restarts with its own warm-up in phase 2")

    def on_epoch_start(self, model: TaskModel, epoch: int) -> None:
        self._in_warmup = epoch < self.warmup
        for param, flag in self._flags:  # phase 1 freezes the PLM and head; phase 2 restores their setting
            param.requires_grad_(flag and not self._in_warmup)

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        mask = outputs.attention_mask.unsqueeze(-1).float()
        self._grads, losses = [], []
        for plug in self.plugs:
            cache = plug.take_cache()
            if cache is None:
                continue
            recon = _masked_recon(*cache, mask)
            params = self.ae_parameters(plug)
            # Only this layer's AEs: the loss never reaches the PLM, nor the AEs of the layers below.
            grads = torch.autograd.grad(recon, params, retain_graph=True, allow_unused=True)
            self._grads += zip(params, grads, strict=True)
            losses.append(recon.detach())
        if losses:
            self.logs["recon"] = float(torch.stack(losses).mean())
        return {}  # the reconstruction loss is not a term of the loop's backward

    def after_backward(self, model: TaskModel) -> None:
        if self._in_warmup:  # phase 1: the AEs learn from the reconstruction loss only
            for param in self.ae_parameters():
                param.grad = None

    def after_step(self, model: TaskModel) -> None:
        self._step += 1
        if self._main_start and self._step >= self._main_start:
            # After the loop's scheduler step, so this is the LR of the next (phase-2) step: the restarted schedule.
            factor = linear_schedule_factor(self._step - self._main_start, self._main_steps, self._main_warmup)
            for group in self.main_optimizer().param_groups:
                group["lr"] = group["initial_lr"] * factor
        if not self._grads or self.ae_optimizer is None:
            return
        for param, grad in self._grads:
            param.grad = grad  # the main optimiser has already stepped and cleared its gradients
        self.ae_optimizer.step()
        self.ae_optimizer.zero_grad(set_to_none=True)
        self._grads = []

    def finalize(self, model: TaskModel) -> None:
        unplug(model)
        for param, flag in self._flags:
            param.requires_grad_(flag)
        self.plugs, self._flags, self._grads, self.ae_optimizer = [], [], [], None


def _masked_recon(noisy: torch.Tensor, outs: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Mean over HAEs of the MSE on non-pad positions (the target is the noisy input, a constant here)."""
    target, count = noisy.detach().float(), mask.sum().clamp(min=1.0) * noisy.shape[-1]
    return torch.stack([((out.float() - target).pow(2) * mask).sum() / count for out in outs]).mean()

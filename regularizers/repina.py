"""REPINA: representation projection invariance (arXiv 2205.11603). Registered as ``repina_i`` and ``repina_mlp``.

    L = L_task + λ · mean ‖φ(h_θ(x)) − h_0(x)‖²

``h_θ(x)`` is the representation that feeds the head in the training forward (the loop's ``outputs.representation``,
with dropout: the model being fine-tuned is in train mode); ``h_0(x)`` is the same representation from a frozen copy
of the pretrained task model taken in ``prepare`` (eval mode: no dropout, ``requires_grad`` off, never stepped).
REPINA_I uses φ = identity; REPINA_MLP a small trainable projection dropped after training.

Design choices (METHODS.md leaves these to us; each one is a config field where it is a number):
- The norm is the squared L2 norm over the hidden dimension; the mean runs over the examples of the batch (over the
  choice representations for multiple choice). Token tasks regularise every non-pad token state (attention mask = 1,
  special tokens included) and average over all such tokens of the batch.
- Targets depend only on the input, so they are computed once per example in ``prepare`` (one forward-only pass of
  the frozen copy over ``ctx.train_batches``, under the run's autocast, stored in float32 on the device) and cached
  in memory keyed by ``(example id, number of real tokens)``: the token count pins the truncation. An example seen
  later without a cache entry (a batch ``prepare`` did not see) is computed on first sight. ``cache_targets=False``
  runs the frozen forward every step instead (for the equivalence test and the performance comparison); the cached
  and uncached targets differ only by float noise, because the padding of the batches differs.
- The frozen copy stays alive for the whole run (it answers cache misses and the uncached mode) and is released in
  ``finalize``, with the cache and φ: nothing of REPINA is attached to the model, so the final model is plain.
- λ defaults to 0.1, the log-midpoint of the search range ``log[1e-3, 10]``; λ = 0 reproduces STD bit for bit
  (the term is then detached: φ's all-zero gradients would change the rounding of the loop's clip norm).
- REPINA_MLP: ``φ(z) = z + W₂ GELU(W₁ z + b₁) + b₂`` with hidden width = the model's hidden size (``phi_hidden``),
  W₁ ~ N(0, initializer_range) like BERT's own layers, W₂ and the biases zero, so φ starts as the identity. Its
  parameters come from a ``torch.Generator`` seeded from the run seed (so creating φ does not shift the global random
  stream that drives dropout), join the main optimiser through ``param_groups`` (same learning rate, weight decay on
  the weight matrices only, which pulls φ towards the identity), and live on the method, not on the model.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch
from optuna.distributions import FloatDistribution
from torch import nn

from regbench.harness.run.method import Method, MethodConfig, TrainContext, decay_groups, hparam, register_method
from regbench.harness.run.model import TaskModel, TaskOutput

_PHI_SEED_SALT = 0x9E9A  # separates φ's generator from the head's (both start from the run seed)


@dataclass(frozen=True)
class RepinaConfig(MethodConfig):
    lam: float = hparam(0.1, "λ, the weight of the representation-invariance term (0 = plain fine-tuning)")
    cache_targets: bool = hparam(True, "cache the frozen targets per example instead of a frozen forward per step")


@dataclass(frozen=True)
class RepinaMLPConfig(RepinaConfig):
    phi_hidden: int = hparam(0, "hidden width of φ's MLP; 0 = the model's hidden size")


class Projection(nn.Module):
    """φ(z) = z + MLP(z): one GELU hidden layer, last layer zero-initialised (identity at the start)."""

    def __init__(self, hidden: int, width: int, init_std: float, seed: int) -> None:
        super().__init__()
        # skip_init allocates without the default init, which would draw from the global random stream.
        self.up = nn.utils.skip_init(nn.Linear, hidden, width)
        self.down = nn.utils.skip_init(nn.Linear, width, hidden)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.up.weight.normal_(0.0, init_std, generator=generator)
            for tensor in (self.up.bias, self.down.weight, self.down.bias):
                tensor.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.down(nn.functional.gelu(self.up(z)))


@register_method
class RepinaI(Method[RepinaConfig]):
    """REPINA with φ = identity; ``RepinaMLP`` overrides ``build_projection``."""

    name = "repina_i"
    summary = "REPINA_I: pull the fine-tuned representation towards the frozen pretrained one (cached targets)"
    config_class = RepinaConfig

    def __init__(self, config: RepinaConfig | None = None) -> None:
        super().__init__(config)
        self.frozen: TaskModel | None = None
        self.phi: nn.Module | None = None
        self.cache: dict[tuple[int, int], torch.Tensor] = {}

    tuned = {"lam": FloatDistribution(1e-3, 10.0, log=True)}

    # ---- hooks --------------------------------------------------------------------------------------------
    def prepare(self, ctx: TrainContext) -> None:
        super().prepare(ctx)
        self.frozen = copy.deepcopy(ctx.model).eval().requires_grad_(False)
        self.phi = self.build_projection(ctx)
        self.cache = {}
        if self.config.cache_targets:
            for batch in ctx.train_batches:
                self._targets(batch)  # fills the cache; the loop's batches then hit it

    def param_groups(self, model: TaskModel, lr: float, weight_decay: float) -> list[dict]:
        groups = super().param_groups(model, lr, weight_decay)
        if self.phi is not None:
            for group in decay_groups(self.phi.named_parameters(), weight_decay):  # as the base does for the model
                groups.append({**group, "name": f"phi_{group['name']}"})
        return groups

    def loss(self, model: TaskModel, batch: dict[str, torch.Tensor], outputs: TaskOutput) -> dict[str, torch.Tensor]:
        target = self._targets(batch)
        current = _real_states(outputs.representation, batch["attention_mask"], model.task_type).float()
        if self.phi is not None:
            current = self.phi(current)
        distance = (current - target).pow(2).sum(-1).mean()
        self.logs["repina_distance"] = float(distance.detach())
        if self.config.lam == 0:  # no gradient at all: zeros for φ would still enter the clip norm and its rounding
            return {"repina": distance.detach() * 0.0}
        return {"repina": self.config.lam * distance}

    def finalize(self, model: TaskModel) -> None:
        self.frozen, self.phi, self.cache = None, None, {}  # nothing of REPINA outlives training

    def frozen_modules(self) -> list[nn.Module]:
        return [self.frozen] if self.frozen is not None else []

    # ---- pieces -------------------------------------------------------------------------------------------
    def build_projection(self, ctx: TrainContext) -> nn.Module | None:
        return None

    def cache_nbytes(self) -> int:
        """Memory held by the cached targets (the perf benchmark reports it per 1k examples)."""
        return sum(t.numel() * t.element_size() for t in self.cache.values())

    def _targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """h_0 of the batch's real states, rows in the order ``_real_states`` yields them (float32)."""
        if not self.config.cache_targets:
            return _real_states(*self._frozen_forward(batch), self._reference().task_type).float()
        # One host transfer for all keys (a single sync per step on a GPU).
        keys = [tuple(k) for k in torch.stack([batch["idx"], _token_counts(batch["attention_mask"])], 1).tolist()]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            self._fill(batch, keys, missing)
        rows = [self.cache[key] for key in keys]
        if self._reference().task_type == "token_classification":
            return torch.cat(rows)
        return torch.stack(rows).reshape(-1, rows[0].shape[-1])

    def _fill(self, batch: dict[str, torch.Tensor], keys: list[tuple[int, int]], missing: list[int]) -> None:
        sub = {k: v[missing] for k, v in batch.items()}
        rep, mask = self._frozen_forward(sub)
        for row, i in enumerate(missing):
            states = rep[row]
            if self._reference().task_type == "token_classification":
                states = states[mask[row].bool()]
            self.cache[keys[i]] = states.float().clone()

    def _reference(self) -> TaskModel:
        if self.frozen is None:
            raise RuntimeError(f"{self.name}: the frozen pretrained copy exists from prepare() until finalize()")
        return self.frozen

    @torch.no_grad()
    def _frozen_forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        autocast = (self.ctx.autocast if self.ctx is not None else None) or contextlib.nullcontext
        with autocast():
            out = self._reference()(**batch)
        return out.representation, out.attention_mask


def _token_counts(mask: torch.Tensor) -> torch.Tensor:
    """Real tokens per example (summed over choices for multiple choice): pins the truncation in the cache key."""
    return mask.flatten(1).sum(1)


def _real_states(rep: torch.Tensor, mask: torch.Tensor, task_type: str) -> torch.Tensor:
    """(N, H) rows to compare: the non-pad token states of token tasks, else one row per (choice) representation."""
    if task_type == "token_classification":
        return rep[mask.bool()]
    return rep.reshape(-1, rep.shape[-1])


@register_method
class RepinaMLP(RepinaI):
    name = "repina_mlp"
    summary = "REPINA_MLP: as REPINA_I through a trainable near-identity MLP projection φ, dropped after training"
    config_class = RepinaMLPConfig
    config: RepinaMLPConfig

    def build_projection(self, ctx: TrainContext) -> nn.Module:
        config = ctx.model.encoder.config
        seed = int(np.random.SeedSequence([ctx.seed, _PHI_SEED_SALT]).generate_state(1)[0])
        width = self.config.phi_hidden or config.hidden_size
        return Projection(config.hidden_size, width, config.initializer_range, seed).to(ctx.device)


"""LLRD: layer-wise learning-rate decay, smaller learning rates for lower layers. Registered as ``llrd``.

Reference: Howard & Ruder 2018 ("discriminative fine-tuning", ULMFiT, arXiv 1801.06146); in this form from Zhang et
al. 2021, "Revisiting Few-sample BERT Fine-tuning" (ICLR 2021, arXiv 2006.05987; code asappresearch/revisiting-bert-ft,
``--layerwise_learning_rate_decay``). With base learning rate η, decay ξ and L Transformer layers:

    head (and pooler)              η            depth 0
    Transformer layer L−1 (top)    η · ξ        depth 1
    Transformer layer i            η · ξ^(L−i)
    Transformer layer 0            η · ξ^L
    embeddings                     η · ξ^(L+1)  depth L+1, the smallest

Design choices (METHODS.md gives only ξ ∈ [0.7, 1.0]):
- Depths as in the reference code: the pooler sits with the head at η; the top layer already gets η·ξ.
- Weight decay follows every method's convention (decay on weight matrices, none on biases and LayerNorm
  parameters), also for the head; the reference gives head and pooler no decay at all.
- Each depth gets a decay and a no-decay group named ``depth{d}_decay`` / ``depth{d}_no_decay`` with its own
  ``lr``; the loop's warm-up/decay schedule scales every group's LR by the same factor. Parameters outside the
  embeddings and the layers (head, pooler, anything a method injected) are at depth 0.
- Needs a BERT-style encoder (``encoder.embeddings`` and ``encoder.encoder.layer``); ξ defaults to 0.85, the
  midpoint of the searched range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from optuna.distributions import FloatDistribution
from torch import nn

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import Method, MethodConfig, decay_groups, hparam, register_method
from regbench.harness.run.model import TaskModel

__all__ = ["LLRD", "LLRDConfig", "layer_depths", "transformer_layers"]


def transformer_layers(model: TaskModel) -> nn.ModuleList:
    """The encoder's Transformer layers, bottom first (BERT-style ``encoder.encoder.layer``)."""
    layers = getattr(getattr(model.encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or getattr(model.encoder, "embeddings", None) is None:
        raise ConfigError("this method needs a BERT-style encoder (encoder.embeddings and encoder.encoder.layer)")
    return layers


def layer_depths(model: TaskModel) -> dict[int, int]:
    """Depth from the top per parameter id: head/pooler/other 0, layer i → L − i, embeddings L + 1."""
    layers = transformer_layers(model)
    embeddings = cast(nn.Module, model.encoder.embeddings)
    depth = {id(p): len(layers) + 1 for p in embeddings.parameters()}
    for i, layer in enumerate(layers):
        depth.update({id(p): len(layers) - i for p in layer.parameters()})
    return {id(p): depth.get(id(p), 0) for p in model.parameters()}


@dataclass(frozen=True)
class LLRDConfig(MethodConfig):
    decay: float = hparam(0.85, "ξ: each layer further down gets ξ times the learning rate of the one above")

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1:
            raise ConfigError(f"llrd: decay must be in (0, 1], got {self.decay}")


@register_method
class LLRD(Method[LLRDConfig]):
    name = "llrd"
    summary = "layer-wise LR decay (Zhang et al. 2021): head η, top layer η·ξ, ..., embeddings η·ξ^(L+1)"
    config_class = LLRDConfig

    tuned = {"decay": FloatDistribution(0.7, 1.0)}

    def param_groups(self, model: TaskModel, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        depths = layer_depths(model)
        named = list(model.named_parameters())
        groups = []
        for depth in sorted(set(depths.values())):
            at_depth = [(n, p) for n, p in named if depths[id(p)] == depth]
            for group in decay_groups(at_depth, weight_decay):
                groups.append({**group, "lr": lr * self.config.decay**depth, "name": f"depth{depth}_{group['name']}"})
        return groups

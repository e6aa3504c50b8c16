"""Mechanism tests of the methods that mask weights or gradients (see tests/test_mechanisms.py): Mixout and
ChildTuning-D/F. Masks are checked through the hooks the loop calls (the Linear's forward,
``after_backward``)."""

from __future__ import annotations

import math

import pytest
import torch
from mechanism_helpers import features, make_batch, pad_id, prepared
from torch import nn

from regbench.baselines.mixout import MixLinear
from regbench.harness.run import batching

LAYER_PREFIX = "encoder.encoder.layer."


# ---- Mixout ------------------------------------------------------------------------------------------------
def _mixed_weights(layer: nn.Linear, draws: int) -> torch.Tensor:
    """The weight each training forward used: the forward of the identity matrix is W̃ᵀ + b."""
    eye = torch.eye(layer.in_features)
    with torch.no_grad():
        return torch.stack([(layer(eye) - layer.bias).T for _ in range(draws)])  # (draws, out, in)


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_mixout_replaces_whole_input_columns_by_the_target_with_probability_p(p):
    method, model = prepared("mixout", {"p": p}, dropout=0.1)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.0}  # dropout off while mixing
    for layer in (model.encoder.encoder.layer[0].intermediate.dense, model.head):
        assert isinstance(layer, MixLinear)
        target = layer.weight.detach().clone()  # the pretrained weight (the head: its own initial weight)
        with torch.no_grad():
            layer.weight.add_(torch.randn_like(layer.weight))  # as if trained away from the target
        weight = layer.weight.detach()
        layer.train()
        mixed = _mixed_weights(layer, 200)
        dropped = torch.isclose(mixed, target, atol=1e-6).all(
            dim=1
        )  # (draws, in): a column became the target
        kept = torch.isclose(mixed, target + (weight - target) / (1 - p), atol=1e-5).all(dim=1)
        assert bool((dropped ^ kept).all())  # every column is wholly one or the other, never a per-entry mix
        total = dropped.numel()
        assert abs(float(dropped.sum()) - p * total) <= 5 * math.sqrt(total * p * (1 - p))
        assert float((mixed.mean(0) - weight).abs().mean()) < 0.1 * float((weight - target).abs().mean())
        layer.eval()
        x = torch.randn(4, layer.in_features)
        with torch.no_grad():
            assert torch.equal(
                layer(x), nn.functional.linear(x, weight, layer.bias)
            )  # eval: the trained weight


def test_mixout_finalize_keeps_the_expected_weight_in_plain_linears_and_restores_dropout():
    method, model = prepared("mixout", {"p": 0.6}, dropout=0.1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01)
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.finalize(model)
    assert not any(isinstance(m, MixLinear) for m in model.modules())
    # E[W̃] = W: the merged model holds the trained weights themselves, not a target mix.
    assert all(torch.equal(p, trained[n]) for n, p in model.named_parameters())
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.1}


# ---- ChildTuning-D -----------------------------------------------------------------------------------------
def _own_fisher(model, clip: float = 1.0) -> dict[str, torch.Tensor]:
    """Mean over the training batches of g², each tensor's gradient clipped to norm ``clip`` (dropout 0)."""
    params = {n: p for n, p in model.named_parameters() if n.startswith(LAYER_PREFIX)}
    feats = features()
    sums = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    batches = [batching.collate(feats[i : i + 8], pad_id()) for i in range(0, len(feats), 8)]
    for batch in batches:
        out = model(**batch)
        grads = torch.autograd.grad(model.task_loss(out.logits, batch["labels"]), list(params.values()))
        for name, grad in zip(params, grads, strict=True):
            grad = grad.double() * min(1.0, clip / (float(grad.norm()) + 1e-6))
            sums[name] += grad.pow(2)
    return {n: s / len(batches) for n, s in sums.items()}


@pytest.mark.parametrize(("p", "clip"), [(0.2, 1.0), (0.4, 1e-3)])  # 1e-3: every tensor's gradient is clipped
def test_childtuning_d_masks_all_but_the_top_p_fisher_entries_without_rescaling(p, clip):
    method, model = prepared("childtuning-d", {"p": p, "fisher_grad_clip": clip})
    fisher = _own_fisher(model, clip)
    names = list(fisher)
    for param in model.parameters():
        param.grad = torch.full_like(param, 2.0)
    method.after_backward(model)
    grads = dict(model.named_parameters())
    kept = torch.cat([grads[n].grad.flatten() != 0 for n in names])
    scores = torch.cat([fisher[n].flatten() for n in names])
    assert int(kept.sum()) == round(p * kept.numel())
    assert float(scores[kept].min()) >= float(scores[~kept].max()) * (
        1 - 1e-4
    )  # the top of the Fisher, globally
    assert all(bool((grads[n].grad[grads[n].grad != 0] == 2.0).all()) for n in names)  # zeroed, not rescaled
    others = [param for name, param in model.named_parameters() if name not in fisher]
    assert all(bool((param.grad == 2.0).all()) for param in others)  # embeddings, pooler, head never masked


# ---- ChildTuning-F -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.2, 0.45])
def test_childtuning_f_draws_a_fresh_bernoulli_p_mask_each_step_rescaled_by_one_over_p(p):
    method, model = prepared("childtuning-f", {"p": p})
    masks = []
    for _ in range(2):
        for param in model.parameters():
            param.grad = torch.ones_like(param)
        method.after_backward(model)
        layer = {n: q.grad for n, q in model.named_parameters() if n.startswith(LAYER_PREFIX)}
        flat = torch.cat([g.flatten() for g in layer.values()])
        kept = flat != 0
        total = kept.numel()
        assert abs(int(kept.sum()) - p * total) <= 5 * math.sqrt(total * p * (1 - p))
        assert float(flat[kept].min()) == float(flat[kept].max()) == pytest.approx(1 / p, rel=0.02)
        assert float(flat.mean()) == pytest.approx(1.0, abs=0.05)  # the expected gradient is unchanged
        others = [q.grad for n, q in model.named_parameters() if not n.startswith(LAYER_PREFIX)]
        assert all(bool((g == 1).all()) for g in others)
        masks.append(kept)
    overlap = float((masks[0] & masks[1]).float().mean())
    assert overlap == pytest.approx(p * p, abs=0.03)  # independent masks, not one mask reused


def test_childtuning_f_rescales_the_real_task_gradient_of_kept_entries():
    method, model = prepared("childtuning-f", {"p": 0.3})
    batch = make_batch()
    out = model(**batch)
    model.task_loss(out.logits, batch["labels"]).backward()
    raw = {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}
    method.after_backward(model)
    for name, param in model.named_parameters():
        if name in raw and name.startswith(LAYER_PREFIX):
            kept = param.grad != 0
            torch.testing.assert_close(param.grad[kept], raw[name][kept] * 256 / round(256 * 0.3))


def test_mixout_zero_in_training_is_exactly_the_linear_of_the_trained_weight():
    # p = 0 mixes nothing: the forward must be nn.Linear's to the bit. Through the mixing formula t + (W − t) it is
    # not: with t = 1 and |W| ≪ ulp(1) the difference rounds to −1 and the weight comes back as 0.
    linear = nn.Linear(16, 8)
    mix = MixLinear.wrap(linear, 0.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mix.target.fill_(1.0)
        mix.weight.mul_(1e-6)
    mix.train()
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mix(x), nn.functional.linear(x, mix.weight, mix.bias))

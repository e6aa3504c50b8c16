"""Mechanism tests of REPINA_I and REPINA_MLP (see tests/test_mechanisms.py): the penalty is zero at the
pretrained point, grows with the distance of the representation from the frozen pretrained one, scales with λ,
and goes through φ for REPINA_MLP. Targets come from an independent pretrained model in eval mode."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from mechanism_helpers import context, make_batch, prepared, tiny_model
from torch import nn

from regbench.harness.run.method import get_method

NAMES = ("repina_i", "repina_mlp")


def _real(rep: torch.Tensor, batch: dict[str, torch.Tensor], task_type: str) -> torch.Tensor:
    return rep[batch["attention_mask"].bool()] if task_type == "token_classification" else rep


def _move(model, scale: float, seed: int = 4) -> None:
    """Move every encoder weight along one fixed random direction (as training would, away from the start)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.encoder.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))


def _penalty(method, model, batch) -> float:
    return float(method.loss(model, batch, model(**batch))["repina"].detach())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task_type", ["classification", "token_classification"])
def test_penalty_is_zero_at_the_pretrained_point_and_grows_with_the_distance(name, task_type):
    # Dropout 0.1 and eval mode: the frozen targets must be eval-mode representations of the pretrained model.
    method, model = prepared(name, {"lam": 1.0}, task_type, dropout=0.1)
    batch = make_batch(task_type)
    model.eval()
    assert _penalty(method, model, batch) < 1e-9
    penalties = []
    for _ in range(3):
        _move(model, 0.001)  # 1×, 2×, 3× the same small step away
        penalties.append(_penalty(method, model, batch))
    assert 0 < penalties[0] < penalties[1] < penalties[2]
    assert penalties[2] / penalties[0] > 4  # quadratic in the distance near the start (9× for a linear map)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("task_type", ["classification", "token_classification"])
def test_penalty_is_lambda_times_mean_squared_distance_after_phi(name, task_type):
    batch = make_batch(task_type)
    with torch.no_grad():
        target = _real(tiny_model(task_type).eval()(**batch).representation, batch, task_type).double()
    values = {}
    for lam in (0.1, 1.0):
        method, model = prepared(name, {"lam": lam}, task_type)
        _move(model, 0.02)
        if method.phi is not None:
            with torch.no_grad():  # a non-identity φ, so that applying it (or not) shows
                method.phi.down.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(2))
        model.train()
        outputs = model(**batch)
        current = _real(outputs.representation, batch, task_type).double()
        if method.phi is not None:  # φ(z) = z + W₂ GELU(W₁ z + b₁) + b₂, written out here
            up, down = method.phi.up, method.phi.down
            hidden = nn.functional.gelu(current @ up.weight.double().T + up.bias.double())
            current = current + hidden @ down.weight.double().T + down.bias.double()
        want = lam * (current - target).pow(2).sum(-1).mean()
        got = float(method.loss(model, batch, outputs)["repina"].detach())
        assert got == pytest.approx(float(want.detach()), rel=1e-4)
        values[lam] = got
    assert values[1.0] == pytest.approx(10 * values[0.1], rel=1e-4)


def test_repina_mlp_starts_as_the_identity_and_repina_i_has_no_projection():
    method, _ = prepared("repina_mlp")
    z = torch.randn(5, 32)
    with torch.no_grad():
        assert torch.equal(method.phi(z), z)
    assert prepared("repina_i")[0].phi is None


def test_repina_mlp_hidden_layer_is_drawn_from_a_centred_normal_with_the_models_init_std():
    # Only W₁ is random (φ is the identity through W₂ = 0 whatever W₁ is, so the identity test cannot see W₁'s draw).
    method, model = prepared("repina_mlp")
    weight = method.phi.up.weight.detach().double()
    init_std = model.encoder.config.initializer_range
    assert abs(float(weight.mean())) < 4 * init_std / weight.numel() ** 0.5
    assert float(weight.std()) == pytest.approx(init_std, rel=0.1)
    for tensor in (method.phi.up.bias, method.phi.down.weight, method.phi.down.bias):
        assert not tensor.any()


@pytest.mark.parametrize("name", NAMES)
def test_lambda_zero_adds_exactly_zero_to_the_loss(name):
    method, model = prepared(name, {"lam": 0.0})
    _move(model, 0.02)  # away from the start, so the distance itself is not zero
    batch = make_batch()
    term = method.loss(model, batch, model(**batch))["repina"]
    assert method.logs["repina_distance"] > 0
    assert float(term) == 0.0 and not term.requires_grad


@pytest.mark.parametrize("cache_targets", [True, False])
def test_frozen_targets_are_computed_under_the_runs_autocast(cache_targets):
    # The loop hands its precision (bf16 autocast on hosts that have it) to the method; the frozen forward must use
    # it too, or the targets and the fine-tuned representation differ by precision alone.
    entered = []

    @contextlib.contextmanager
    def autocast():
        entered.append(True)
        yield

    model = tiny_model()
    method = get_method("repina_i", {"cache_targets": cache_targets})
    method.num_epochs(1)
    method.prepare(dataclasses.replace(context(model), autocast=autocast))
    batch = make_batch()
    method.loss(model, batch, model(**batch))
    assert entered


@pytest.mark.parametrize("name", NAMES)
def test_the_frozen_copy_is_declared_frozen_until_finalize(name):
    # The conformance suite checks what frozen_modules() declares (no gradient, eval mode, unchanged): an empty list
    # would pass it vacuously.
    method, model = prepared(name)
    assert method.frozen_modules() == [method.frozen] and method.frozen is not model
    method.finalize(model)
    assert method.frozen_modules() == []

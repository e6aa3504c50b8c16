"""Mechanism tests: each method's defining mechanism checked directly, so that removing or mis-scaling it
fails a test (golden losses only pin numbers). This file: the perturbation methods (SMART, R3F, R4F), STD and
STD++, and the check that every registered method has a mechanism test. The others:
tests/test_mechanisms_<group>.py.

Reference formulas come from tests/mechanism_helpers.py, written independently of the method modules. Models
have dropout 0 unless a test says otherwise, so the extra forwards a method runs are deterministic and
comparable."""

from __future__ import annotations

import math

import pytest
import torch
from mechanism_helpers import (
    LR,
    ONE_STEP,
    EmbeddingSpy,
    first_step,
    kl,
    largest_update,
    make_batch,
    pad_id,
    prepared,
    spectral_norm,
    synthetic_data,
    synthetic_task,
    tiny_model,
    with_config,
)

import regbench.baselines.r3f as r3f_module
import regbench.baselines.smart as smart_module
from regbench.harness.run.method import METHODS, get_method
from regbench.harness.run.train import train

# Every registered method and the file holding its mechanism test(s): a new method must add one.
COVERED = {
    "smart": "test_mechanisms",
    "r3f": "test_mechanisms",
    "r4f": "test_mechanisms",
    "std": "test_mechanisms",
    "std++": "test_mechanisms",
    "mvcr": "test_mechanisms_mvcr",
    "mvcr+mixout": "test_mechanisms_mvcr",
    "repina_i": "test_mechanisms_repina",
    "repina_mlp": "test_mechanisms_repina",
    "lp-ft": "test_mechanisms_weights",
    "l2-sp": "test_mechanisms_weights",
    "freeze": "test_mechanisms_weights",
    "llrd": "test_mechanisms_weights",
    "reinit": "test_mechanisms_weights",
    "noisytune": "test_mechanisms_weights",
    "mixout": "test_mechanisms_sparse",
    "childtuning-d": "test_mechanisms_sparse",
    "childtuning-f": "test_mechanisms_sparse",
}


def test_every_registered_method_has_a_mechanism_test():
    registered = {get_method(name).name for name in METHODS.names()}
    assert registered == set(COVERED), f"without a mechanism test: {sorted(registered - set(COVERED))}"


def _extra_forwards(name: str, params: dict, monkeypatch, task_type: str = "classification"):
    """The method's loss terms on one batch, with the embeddings of every extra forward it ran recorded."""
    module = smart_module if name == "smart" else r3f_module
    spy = EmbeddingSpy(module.forward_from_embeddings)
    monkeypatch.setattr(module, "forward_from_embeddings", spy)
    method, model = prepared(name, params, task_type)
    batch = make_batch(task_type)
    model.train()
    outputs = model(**batch)
    terms = method.loss(model, batch, outputs)
    embeds = model.embed(batch["input_ids"]).detach()
    return terms, spy, outputs, model, batch, embeds


def _symmetric(clean, noisy, lam: float, task_type: str, batch) -> torch.Tensor:
    """λ·[KL(clean ‖ noisy) + KL(noisy ‖ clean)] over real tokens (token tasks); λ·MSE for regression."""
    if task_type == "regression":
        return lam * (clean.double() - noisy.double()).pow(2).mean()
    rows = batch["attention_mask"].bool() if task_type == "token_classification" else slice(None)
    return lam * (kl(clean[rows], noisy[rows]) + kl(noisy[rows], clean[rows]))


def _divergence_at(model, batch, embeds, clean, perturbation) -> float:
    with torch.no_grad():
        return float(
            kl(clean, r3f_module.forward_from_embeddings(model, batch, embeds + perturbation).logits)
        )


# ---- SMART -------------------------------------------------------------------------------------------------
def test_smart_ascent_step_is_the_linf_normalised_gradient_and_goes_uphill(monkeypatch):
    sigma, eta, eps = 1e-3, 1e-3, 1e-9  # ε ≪ ‖g‖∞ on the tiny model: each real token's step is η in L∞
    _, spy, outputs, model, batch, embeds = _extra_forwards(
        "smart", {"noise_std": sigma, "step_size": eta, "norm_eps": eps}, monkeypatch
    )
    assert len(spy.inputs) == 2  # the ascent forward from x + z, then the smoothness forward from x + δ
    z, delta = spy.inputs[0] - embeds, spy.inputs[1] - embeds
    pad = batch["attention_mask"].unsqueeze(-1) == 0
    assert (
        float(z[~pad.expand_as(z)].std()) == pytest.approx(sigma, rel=0.05) and not z[pad.expand_as(z)].any()
    )
    # The ascent direction from our own KL(clean ‖ f(x + z)), normalised per token over the hidden dimension.
    start = z.clone().requires_grad_()
    clean = outputs.logits.detach()
    (grad,) = torch.autograd.grad(
        kl(clean, r3f_module.forward_from_embeddings(model, batch, embeds + start).logits), start
    )
    step = eta * grad / (grad.abs().amax(-1, keepdim=True) + eps) * ~pad
    torch.testing.assert_close(delta - z, step.float(), rtol=2e-3, atol=eta * 1e-3)
    assert float((delta - z).abs().amax(-1)[~pad.squeeze(-1)].min()) > 0.99 * eta
    # The step is adversarial: uphill from z, and more than the opposite step of the same size.
    at = [_divergence_at(model, batch, embeds, clean, p) for p in (z, delta, z - (delta - z))]
    assert at[1] > at[2] > 0 and at[1] > 2 * at[0]


@pytest.mark.parametrize("task_type", ["classification", "regression", "token_classification"])
def test_smart_term_is_lambda_times_symmetric_divergence_with_stopped_targets(monkeypatch, task_type):
    for lam in (0.5, 2.0):
        terms, spy, outputs, _, batch, _ = _extra_forwards(
            "smart", {"lam": lam, "noise_std": 1e-2, "step_size": 1e-2}, monkeypatch, task_type
        )
        clean, noisy = outputs.logits, spy.logits
        want = _symmetric(clean, noisy, lam, task_type, batch)
        assert float(want.detach()) > 0
        assert float(terms["smart"].detach()) == pytest.approx(float(want.detach()), rel=1e-4), lam
        if task_type == "classification":
            # mt-dnn's SymKlCriterion detaches each direction's target: d/d(clean) is KL(sg(noisy) ‖ clean)'s.
            (got,) = torch.autograd.grad(terms["smart"], clean, retain_graph=True)
            var = clean.detach().clone().requires_grad_()
            (ref,) = torch.autograd.grad(lam * kl(noisy.detach(), var), var)
            torch.testing.assert_close(
                got.double(), ref.double(), rtol=1e-3, atol=1e-3 * float(ref.abs().max())
            )


# ---- R3F / R4F ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("noise_type", "std_per_eps"), [("uniform", 3**-0.5), ("normal", 1.0)])
@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_r3f_noise_follows_eps_and_its_distribution_at_every_position(
    monkeypatch, noise_type, std_per_eps, eps
):
    _, spy, _, _, _, embeds = _extra_forwards("r3f", {"eps": eps, "noise_type": noise_type}, monkeypatch)
    assert len(spy.inputs) == 1
    noise = (spy.inputs[0] - embeds).double()
    assert float(noise.std()) == pytest.approx(std_per_eps * eps, rel=0.06)
    assert abs(float(noise.mean())) < 0.1 * eps
    if noise_type == "uniform":
        assert float(noise.abs().max()) <= eps * 1.001
    assert bool((noise != 0).any(-1).all())  # padding included, as fairseq


@pytest.mark.parametrize("name", ["r3f", "r4f"])
@pytest.mark.parametrize("task_type", ["classification", "regression", "token_classification"])
def test_r3f_term_is_lambda_times_symmetric_kl_with_gradients_to_both_sides(monkeypatch, name, task_type):
    for lam in (0.5, 2.0):
        terms, spy, outputs, _, batch, _ = _extra_forwards(
            name, {"lam": lam, "eps": 1e-2}, monkeypatch, task_type
        )
        clean, noisy = outputs.logits, spy.logits
        want = _symmetric(clean, noisy, lam, task_type, batch)
        assert (
            0 < float(terms["r3f"].detach()) == pytest.approx(float(want.detach()), rel=1e-4)
        )  # R4F: R3F's term
        # No stop-gradient (fairseq): both distributions get the gradient of the whole symmetric term.
        got = torch.autograd.grad(terms["r3f"], [clean, noisy], retain_graph=True)
        c, n = clean.detach().clone().requires_grad_(), noisy.detach().clone().requires_grad_()
        ref = torch.autograd.grad(_symmetric(c, n, lam, task_type, batch), [c, n])
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a.double(), b.double(), rtol=1e-3, atol=1e-3 * float(b.abs().max()))


def test_r3f_divergence_is_symmetric_in_its_two_distributions():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 3, generator=generator), 3 * torch.randn(6, 3, generator=generator)
    forward = r3f_module.symmetric_divergence(a, b, "classification", None, stop_gradient=False)
    swapped = r3f_module.symmetric_divergence(b, a, "classification", None, stop_gradient=False)
    assert float(forward) == pytest.approx(float(swapped), rel=1e-6)
    assert float(forward) == pytest.approx(float(kl(a, b) + kl(b, a)), rel=1e-5)
    assert (
        abs(float(kl(a, b)) - float(kl(b, a))) > 0.05
    )  # the pair is asymmetric: a one-sided term would show


def test_r4f_keeps_the_head_at_unit_spectral_norm_while_training():
    norms = {}
    for name in ("r3f", "r4f"):
        method, model = prepared(name)
        batch = make_batch()
        model.train()
        optimizer = torch.optim.SGD(model.head.parameters(), lr=5.0)  # large steps that would grow σ(W)
        for _ in range(3):
            outputs = model(**batch)
            model.task_loss(outputs.logits, batch["labels"]).backward()
            optimizer.step()
            optimizer.zero_grad()
        model(**batch)  # the training forward's power iteration for the current weight
        norms[name] = spectral_norm(model.head.weight)
        if (
            name == "r4f"
        ):  # Lipschitz constant σ(W) ≤ 1: logits move at most as far as the representation does
            a, b = torch.randn(2, 64, model.head.in_features).unbind()
            with torch.no_grad():
                stretch = (model.head(a) - model.head(b)).norm(dim=-1) / (a - b).norm(dim=-1)
            assert float(stretch.max()) <= 1.03
    assert norms["r4f"] == pytest.approx(1.0, abs=0.03)
    assert abs(norms["r3f"] - 1.0) > 0.1  # without the constraint the same steps leave σ elsewhere


# ---- STD / STD++ -------------------------------------------------------------------------------------------
def test_std_is_the_plain_loop_adamw_moves_every_trained_weight_by_the_lr():
    method, model = prepared("std")
    batch = make_batch()
    assert method.loss(model, batch, model(**batch)) == {}  # no term of its own
    groups = method.param_groups(model, LR, 0.01)
    decays = {g["name"]: g["weight_decay"] for g in groups}
    assert decays == {"decay": 0.01, "no_decay": 0.0}
    assert all(
        n.endswith("bias") or "LayerNorm" in n
        for n, p in model.named_parameters()
        if any(p is q for q in groups[1]["params"])
    )
    before, after, _ = first_step("std")
    moved = [n for n in before if n.startswith(("encoder.encoder.layer.", "head."))]
    assert largest_update(before, after, moved) == pytest.approx(LR, rel=0.01)


@pytest.mark.parametrize("multiplier", [2, 3])
def test_std_plus_plus_trains_epoch_multiplier_times_the_steps_with_as_many_dev_looks(multiplier):
    config = with_config(ONE_STEP, epochs=2)
    data = synthetic_data("classification")
    steps_per_epoch = -(-len(data["train"]) // config.batch_size)
    results = {}
    for name, params in (("std", {}), ("std++", {"epoch_multiplier": multiplier})):
        model = tiny_model()
        results[name] = train(
            model, get_method(name, params), synthetic_task("classification"), data, config, 0, pad_id()
        )
    assert results["std"].steps == 2 * steps_per_epoch
    assert results["std++"].steps == multiplier * 2 * steps_per_epoch
    assert len(results["std++"].dev_curve) == len(results["std"].dev_curve) == 2
    assert get_method("std++").search_space()["lr"].high == 1e-4


def test_r3f_noise_type_read_at_run_time_selects_the_same_distribution():
    # A profile's YAML gives the noise type as a string built at run time (not the interned literal of the code).
    noise_type = "".join(["uni", "form"])
    method = get_method("r3f", {"noise_type": noise_type, "eps": 1e-3})
    noise = method._noise(torch.zeros(4000))
    assert float(noise.abs().max()) <= 1e-3 and float(noise.std()) == pytest.approx(1e-3 / math.sqrt(3), rel=0.06)


def test_r3f_masked_kl_of_a_single_real_token_is_that_tokens_kl():
    target, logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(2)), torch.zeros(3, 5)
    mask = torch.tensor([0, 1, 0])
    single = float(r3f_module.kl_divergence(target, logits, mask))
    assert single == pytest.approx(float(kl(target[1:2], logits[1:2])), rel=1e-6)

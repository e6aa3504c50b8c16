"""Mechanism tests of the methods that act on weights and learning rates (see tests/test_mechanisms.py):
LP-FT, Freeze, L2-SP, LLRD, re-init and NoisyTune. Update sizes come from Adam's first step: with no warm-up
it moves every entry that has a real gradient by ±lr, so the largest |Δ| of a parameter group reads off its
learning rate."""

from __future__ import annotations

import math

import pytest
import torch
from mechanism_helpers import (
    LR,
    ONE_STEP,
    SEED,
    context,
    deeper_pretrained,
    first_step,
    largest_update,
    make_batch,
    pad_id,
    prepared,
    tiny_model,
    with_config,
)

from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import get_method
from regbench.harness.run.model import TaskModel
from regbench.harness.run.train import train
from regbench.harness.testing.probe import synthetic_data, synthetic_task

LAYERS = 2  # the tiny random BERT


def _names(state, *prefixes: str) -> list[str]:
    return [n for n in state if n.startswith(prefixes)]


# ---- LP-FT / Freeze ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("head_lr", [2e-3, 3e-2])
def test_lp_ft_stage_one_moves_the_head_at_head_lr_and_never_the_encoder(head_lr):
    # 2 epochs of 2 steps, half of them probing: the first step is a stage-1 step at the head's full LR.
    params = {"head_lr": head_lr, "lp_fraction": 0.5, "stage_warmup_ratio": 0.0}
    before, after, method = first_step("lp-ft", params, with_config(ONE_STEP, epochs=2))
    encoder = _names(before, "encoder.")
    assert all(torch.equal(before[n], after[n]) for n in encoder)
    assert method.frozen and all(not p.requires_grad for p in method.frozen)  # no encoder gradient at all
    assert len(method.frozen) == len(encoder)
    # head_lr alone: the main optimiser (base LR) must not step the head a second time.
    assert largest_update(before, after, ["head.weight", "head.bias"]) == pytest.approx(head_lr, rel=0.01)


def test_freeze_trains_only_the_head_at_the_run_lr():
    before, after, method = first_step("freeze")
    assert all(torch.equal(before[n], after[n]) for n in _names(before, "encoder."))
    assert largest_update(before, after, ["head.weight", "head.bias"]) == pytest.approx(LR, rel=0.01)
    model = tiny_model()
    method = get_method("freeze")
    method.prepare(context(model))
    owned = {id(p) for g in method.param_groups(model, LR, 0.01) for p in g["params"]}
    assert owned == {id(p) for p in model.head.parameters()}  # the optimiser never holds the encoder


# ---- L2-SP -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.1, 0.7])
@pytest.mark.parametrize("row_wise", [True, False])
def test_l2sp_penalty_and_gradient_are_half_alpha_squared_distance_on_the_encoder(alpha, row_wise):
    method, model = prepared("l2-sp", {"alpha": alpha, "sparse_embedding_rows": row_wise})
    batch = make_batch()
    generator = torch.Generator().manual_seed(1)
    words = model.encoder.get_input_embeddings().weight
    moves = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            move = 0.01 * torch.randn(param.shape, generator=generator)
            if param is words:  # only the rows of tokens seen move (the documented row-wise premise)
                seen = torch.zeros(param.shape[0], dtype=torch.bool)
                seen[batch["input_ids"].flatten()] = True
                move[~seen] = 0
            param.add_(move)
            moves[name] = move
    want = (
        0.5
        * alpha
        * sum(float(m.double().pow(2).sum()) for n, m in moves.items() if n.startswith("encoder."))
    )
    outputs = model(**batch)
    assert float(method.loss(model, batch, outputs)["l2sp"]) == pytest.approx(want, rel=1e-4)
    for param in model.parameters():
        param.grad = torch.zeros_like(param)
    method.after_backward(model)
    for (
        name,
        param,
    ) in model.named_parameters():  # ∇ (α/2)‖w − w0‖² = α(w − w0) on the encoder, nothing on the head
        expected = alpha * moves[name] if name.startswith("encoder.") else torch.zeros_like(param)
        torch.testing.assert_close(param.grad, expected, rtol=1e-4, atol=1e-7)


def test_l2sp_replaces_decay_toward_zero_on_the_encoder_only():
    method, model = prepared("l2-sp")
    groups = {g["name"]: g for g in method.param_groups(model, LR, 0.01)}
    encoder = {id(p) for p in model.encoder.parameters()}
    assert groups["encoder_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.01
    assert all(id(p) in encoder for p in groups["encoder_decay"]["params"])
    assert any(p is model.head.weight for p in groups["decay"]["params"])


# ---- LLRD --------------------------------------------------------------------------------------------------
def _depth(name: str) -> int:
    """The documented depths: head and pooler 0, layer i → L − i, embeddings L + 1."""
    if name.startswith("encoder.embeddings."):
        return LAYERS + 1
    if name.startswith("encoder.encoder.layer."):
        return LAYERS - int(name.split(".")[3])
    return 0


@pytest.mark.parametrize("decay", [0.5, 0.8])
def test_llrd_learning_rate_decays_by_xi_per_layer_from_the_head_down(decay):
    method, model = prepared("llrd", {"decay": decay})
    lr_of = {id(p): g["lr"] for g in method.param_groups(model, LR, 0.01) for p in g["params"]}
    for name, param in model.named_parameters():
        assert lr_of[id(param)] == pytest.approx(LR * decay ** _depth(name), rel=1e-9), name
    # The real loop keeps those ratios: the first step's largest update per depth is that depth's LR.
    before, after, _ = first_step("llrd", {"decay": decay})
    for depth in range(LAYERS + 2):
        names = [n for n in before if _depth(n) == depth and not n.startswith("encoder.pooler.")]
        assert largest_update(before, after, names) == pytest.approx(LR * decay**depth, rel=0.01), depth


# ---- re-init -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("loaded", [False, True])
def test_reinit_restores_the_init_distribution_in_exactly_the_top_layers_and_pooler(layers, loaded):
    model, method = tiny_model(), get_method("reinit", {"layers": layers})
    with torch.no_grad():  # as if trained: every encoder value leaves its init (biases ≠ 0, LayerNorm ≠ 1)
        for param in model.encoder.parameters():
            param.add_(0.05)
            # from_pretrained flags the tensors it loaded, and HF's _init_weights skips flagged tensors
            param._is_hf_initialized = loaded
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.prepare(context(model))
    top = tuple(f"encoder.encoder.layer.{i}." for i in range(LAYERS - layers, LAYERS)) + ("encoder.pooler.",)
    std = model.encoder.config.initializer_range
    for name, param in model.named_parameters():
        value = param.detach()
        if not name.startswith(top):
            assert torch.equal(value, trained[name]), name  # lower layers, embeddings and head untouched
        elif name.endswith("bias"):
            assert not value.any(), name
        elif "LayerNorm" in name:
            assert bool((value == 1).all()), name
        else:  # a Linear weight: N(0, initializer_range)
            assert abs(float(value.mean())) < 4 * std / math.sqrt(value.numel()), name
            assert float(value.std()) == pytest.approx(std, rel=0.15), name


# ---- NoisyTune ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise_lambda", [0.1, 0.3])
def test_noisytune_noise_is_uniform_scaled_by_each_tensors_std_times_lambda(noise_lambda):
    method, model = prepared("noisytune", {"noise_lambda": noise_lambda})
    pretrained = dict(tiny_model().named_parameters())  # the same pretrained weights and head, unperturbed
    scaled = []
    for name, param in model.named_parameters():
        before, noise = pretrained[name].detach(), (param - pretrained[name]).detach().double()
        spread = float(before.double().std()) if before.numel() > 1 else 0.0
        if (
            name.startswith("head.") or spread == 0.0
        ):  # the head is not perturbed; constant tensors get no noise
            assert not noise.any(), name
            continue
        unit = noise / (noise_lambda * spread)  # should be U(−1/2, 1/2) entry by entry
        assert float(unit.abs().max()) <= 0.5 + 1e-3, name
        if unit.numel() >= 1000:
            assert float(unit.std()) == pytest.approx(12**-0.5, rel=0.05), name
        scaled.append(unit.flatten())
    pooled = torch.cat(scaled)
    assert float(pooled.std()) == pytest.approx(12**-0.5, rel=0.02) and abs(float(pooled.mean())) < 0.01


def test_noisytune_matrices_only_leaves_vectors_alone_and_head_joins_on_request():
    """The tensor filter (a cosmic-ray run on noisytune.py found it untested): ``matrices_only`` perturbs only ≥ 2-dim
    tensors, leaving biases and LayerNorm vectors out; by default every tensor with > 1 entry is perturbed (the tiny
    model's vectors are constant, so their noise, scaled by std = 0, is invisible: the selection is checked);
    ``include_head`` adds the head."""

    def selected(params: dict) -> dict[str, int]:
        method, model = prepared("noisytune", {"noise_lambda": 0.3, **params})
        names = {id(p): n for n, p in model.named_parameters()}
        return {names[id(p)]: p.dim() for p in method.perturbed(model)}

    matrices, everything, with_head = selected({"matrices_only": True}), selected({}), selected({"include_head": True})
    _, model = prepared("noisytune", {"noise_lambda": 0.3})
    encoder = {f"encoder.{n}": p.dim() for n, p in model.encoder.named_parameters() if p.numel() > 1}
    assert everything == encoder  # every encoder tensor with > 1 entry, vectors included, no head
    assert matrices == {n: d for n, d in encoder.items() if d >= 2} and len(matrices) < len(everything)
    assert set(with_head) - set(everything) and all(n.startswith("head.") for n in set(with_head) - set(everything))


def test_noisytune_rejects_a_negative_lambda_and_zero_changes_nothing():
    with pytest.raises(ConfigError, match="noise_lambda must be ≥ 0"):
        get_method("noisytune", {"noise_lambda": -0.1})
    pretrained = dict(tiny_model().named_parameters())
    _, model = prepared("noisytune", {"noise_lambda": 0.0})
    assert all(torch.equal(p, pretrained[n]) for n, p in model.named_parameters())


def test_noisytune_searches_the_lambda_range_of_methods_md_around_its_default():
    """METHODS.md: λ ∈ [0.05, 0.3]; the default (used when λ is fixed) lies inside it."""
    space = get_method("noisytune").search_space()
    assert (space["noise_lambda"].low, space["noise_lambda"].high) == (0.05, 0.3) and not space["noise_lambda"].log
    assert get_method("noisytune").config.noise_lambda == 0.15


def _lp_ft_run(params: dict, epochs: int) -> tuple[list[float], list[float], object]:
    """LP-FT over a real run: the main optimiser's LR for the next step after every step, and the head's gradient
    norm as stage 1's head optimiser sees it (after any clipping)."""
    method, model = get_method("lp-ft", params), tiny_model()
    lrs, head_norms = [], []
    after_step, head_step = method.after_step, None

    def step_spy(m):
        after_step(m)
        lrs.append(method.main_optimizer().param_groups[0]["lr"])

    def backward_spy(m):
        nonlocal head_step
        if head_step is None and method.head_optimizer is not None:
            head_step = method.head_optimizer.step

            def recorded_step(*args, **kwargs):
                grads = [p.grad for p in m.head.parameters() if p.grad is not None]
                head_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
                return head_step(*args, **kwargs)
            method.head_optimizer.step = recorded_step
        after_backward(m)

    after_backward = method.after_backward
    method.after_step, method.after_backward = step_spy, backward_spy
    train(model, method, synthetic_task("classification"), synthetic_data("classification"),
          with_config(ONE_STEP, epochs=epochs), SEED, pad_id())
    return lrs, head_norms, method


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")  # the spy wraps it
@pytest.mark.parametrize("stage_warmup_ratio", [0.0, 0.5])
def test_lp_ft_stage_two_restarts_the_linear_schedule_over_its_own_steps(stage_warmup_ratio):
    # A quarter of 4 epochs probes: stage 2 (3× longer than stage 1) warms up and decays to zero over its own steps.
    params = {"lp_fraction": 0.25, "stage_warmup_ratio": stage_warmup_ratio}
    lrs, _, method = _lp_ft_run(params, epochs=4)
    probe, tune = method.probe_steps, len(lrs) - method.probe_steps
    assert probe >= 1 and tune > 2 * probe
    warm = math.ceil(stage_warmup_ratio * tune)
    for k in range(tune):  # lrs[probe - 1 + k]: the LR of stage 2's step k
        want = k / max(1, warm) if k < warm else max(0.0, (tune - k) / max(1, tune - warm))
        assert lrs[probe - 1 + k] == pytest.approx(LR * want, abs=1e-12), (k, lrs)


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")  # the spy wraps it
@pytest.mark.parametrize("max_norm", [1e-3, 0.0])
def test_lp_ft_stage_one_clips_the_head_gradient_norm_unless_off(max_norm):
    _, norms, _ = _lp_ft_run({"lp_fraction": 0.5, "lp_max_grad_norm": max_norm}, epochs=2)
    assert norms
    if max_norm:
        assert max(norms) == pytest.approx(max_norm, rel=1e-4)
    else:  # 0 = off: the raw gradients are far larger than 1e-3
        assert min(norms) > 1e-2


def _three_layer_model() -> TaskModel:
    return TaskModel(deeper_pretrained(3), "classification", 3)


def test_llrd_embeddings_sit_one_below_the_bottom_layer_in_an_odd_depth_encoder():
    model = _three_layer_model()  # the embeddings at depth 4
    method = get_method("llrd", {"decay": 0.5})
    method.num_epochs(1)
    method.prepare(context(model))
    lr_of = {id(p): g["lr"] for g in method.param_groups(model, LR, 0.01) for p in g["params"]}
    embeddings = list(model.encoder.embeddings.parameters())
    assert embeddings and all(lr_of[id(p)] == pytest.approx(LR * 0.5**4) for p in embeddings)


def test_noisytune_leaves_single_entry_tensors_alone_even_with_the_head_and_vectors():
    # A regression head's bias has one entry: its std is undefined (NaN noise), so it is never perturbed.
    method, model = prepared("noisytune", {"noise_lambda": 0.3, "include_head": True}, task_type="regression")
    chosen = {id(p) for p in method.perturbed(model)}
    assert model.head.bias.numel() == 1 and id(model.head.bias) not in chosen
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("layers", [1, 2])
def test_reinit_picks_the_top_layers_of_an_odd_depth_encoder(layers):
    model = _three_layer_model()
    chosen = get_method("reinit", {"layers": layers, "reinit_pooler": False}).targets(model)
    assert chosen == list(model.encoder.encoder.layer[3 - layers:])

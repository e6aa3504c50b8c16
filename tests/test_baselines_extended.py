"""Method-specific tests of Mixout, ChildTuning-D/F, NoisyTune, LLRD, re-init and mvcr+mixout (tiny random BERT)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from regbench.baselines.child_tuning import fisher_information, masked_parameters, top_fraction_masks
from regbench.baselines.mixout import MixLinear, apply_mixout
from regbench.harness.api import run
from regbench.harness.core.errors import ConfigError
from regbench.harness.run import batching
from regbench.harness.run.method import Method, TrainContext, get_method
from regbench.harness.run.model import TINY_MODEL, TaskModel, load_pretrained
from regbench.harness.run.train import TrainConfig, train
from regbench.harness.testing.probe import synthetic_data, synthetic_task

METHODS = ("mixout", "childtuning-d", "childtuning-f", "noisytune", "llrd", "reinit", "mvcr+mixout")
SEED = 5
CONFIG = TrainConfig(epochs=2, batch_size=8, lr=1e-3, eval_batch_size=8, device="cpu", precision="fp32")


def _model(task_type: str = "classification", dropout: float = 0.1) -> TaskModel:
    task = synthetic_task(task_type)
    torch.manual_seed(SEED)
    return TaskModel(load_pretrained(TINY_MODEL), task.type, task.num_labels, dropout=dropout, head_seed=SEED)


def _prepared(name: str, params: dict[str, Any] | None = None, dropout: float = 0.1) -> tuple[Method, TaskModel]:
    """A method after ``prepare`` on a fresh tiny model (no training), as the loop would call it."""
    method, model, task = get_method(name, params), _model(dropout=dropout), synthetic_task("classification")
    method.prepare(_context(model, task))
    return method, model


def _context(model: TaskModel, task: Any) -> TrainContext:
    features = synthetic_data(task.type)["train"]
    order = [list(range(i, min(i + 8, len(features)))) for i in range(0, len(features), 8)]
    pad = load_pretrained(TINY_MODEL).tokenizer.pad_token_id
    batches = _Batches(lambda: batching.iterate(features, order, pad, torch.device("cpu")))
    return TrainContext(model, task, batches, torch.device("cpu"), CONFIG.lr, 4, SEED, autocast=contextlib.nullcontext)


class _Batches:
    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def _train(name: str, params: dict[str, Any] | None = None, dropout: float = 0.1) -> tuple[TaskModel, Method, Any]:
    task, method, model = synthetic_task("classification"), get_method(name, params), _model(dropout=dropout)
    result = train(model, method, task, synthetic_data("classification"), CONFIG, SEED,
                   load_pretrained(TINY_MODEL).tokenizer.pad_token_id)
    return model, method, result


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_registered_names_configs_and_search_spaces():
    ranges = {"mixout": ("p", 0.1, 0.9), "childtuning-d": ("p", 0.1, 0.5), "childtuning-f": ("p", 0.1, 0.5),
              "noisytune": ("noise_lambda", 0.05, 0.3), "llrd": ("decay", 0.7, 1.0), "reinit": ("layers", 1, 3),
              "mvcr+mixout": ("n_layers_with_ae", 1, 3)}
    for name in METHODS:
        method = get_method(name)
        space = type(method).search_space()
        own, low, high = ranges[name]
        assert space["lr"].low == 1e-5 and space["lr"].high == 5e-4 and space["lr"].log
        assert (space[own].low, space[own].high) == (low, high)
        assert set(space) - {"lr"} <= {f.name for f in dataclasses.fields(method.config)}
    assert get_method("mvcr+mixout").config.mixout_p == 0.1
    with pytest.raises(ConfigError):
        get_method("mixout", {"p": 1.0})


# ---- Mixout ----------------------------------------------------------------------------------------------------
def test_mixout_zero_equals_std_without_dropout_and_finalizes_to_plain_linears():
    std_model, _, std_result = _train("std", dropout=0.0)
    mix_model, _, mix_result = _train("mixout", {"p": 0.0}, dropout=0.1)  # Mixout turns the model's dropout off
    a, b = _state(std_model), _state(mix_model)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert std_result.dev_curve == mix_result.dev_curve and std_result.epoch_losses == mix_result.epoch_losses
    linears = [m for m in mix_model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2 * 6 + 2 and all(type(m) is nn.Linear for m in linears)  # 6 per layer, pooler, head
    assert {m.p for m in mix_model.modules() if isinstance(m, nn.Dropout)} == {0.1}  # restored by finalize


def test_mixout_mixes_input_units_in_training_and_uses_the_trained_weight_in_eval():
    method, model = _prepared("mixout", {"p": 0.4})
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.0}
    layer = model.encoder.encoder.layer[0].intermediate.dense
    assert isinstance(layer, MixLinear) and isinstance(model.head, MixLinear)
    assert list(model.state_dict()) == list(_model().state_dict())  # the target buffer is not persistent
    with torch.no_grad():
        layer.weight.add_(torch.randn_like(layer.weight))  # as if trained away from the target
    target, weight = layer.target, layer.weight.detach()
    x = torch.randn(5, layer.in_features)
    layer.eval()
    assert torch.equal(layer(x), nn.functional.linear(x, weight, layer.bias))
    layer.train()
    draws = torch.stack([layer.mixed_weight().detach() for _ in range(400)])
    kept = ~torch.isclose(draws, target.expand_as(draws)).all(dim=1)  # (draws, in): column took the trained weight
    assert torch.allclose(draws[0][:, kept[0]], (target + (weight - target) / 0.6)[:, kept[0]], atol=1e-6)
    assert torch.equal(draws[0][:, ~kept[0]], target[:, ~kept[0]])
    assert abs(float(kept.float().mean()) - 0.6) < 0.03  # one Bernoulli(1 − p) per input unit
    assert float((draws.mean(0) - weight).abs().mean()) < 0.05  # unbiased: E[W̃] = W
    # d/dW of Σ x W̃ᵀ is x.sum(0) · m / (1 − p) in every row: masked columns get nothing, kept ones are rescaled
    grad = torch.autograd.grad(layer(x).sum(), layer.weight)[0]
    kept_now = grad.abs().sum(0) > 0
    assert torch.allclose(grad[:, kept_now], (x.sum(0) / 0.6)[kept_now].expand(layer.out_features, -1), rtol=1e-5)
    assert 0 < int(kept_now.sum()) < layer.in_features
    method.finalize(model)
    assert type(model.encoder.encoder.layer[0].intermediate.dense) is nn.Linear
    assert model.encoder.encoder.layer[0].intermediate.dense.weight is layer.weight  # the trained Parameter, kept


def test_apply_mixout_never_wraps_twice():
    model = _model()
    apply_mixout(model, 0.2, torch.Generator())
    plug = apply_mixout(model, 0.3, torch.Generator())
    assert plug.wrapped == 0 and {m.p for m in model.modules() if isinstance(m, MixLinear)} == {0.2}


# ---- ChildTuning -----------------------------------------------------------------------------------------------
def test_childtuning_d_keeps_exactly_the_top_fraction_of_fisher_entries():
    p = 0.2
    method, model = _prepared("childtuning-d", {"p": p}, dropout=0.0)  # no dropout: the Fisher pass is repeatable
    params = masked_parameters(model, "layers")
    assert set(method.masks) == set(params) and all(n.startswith("encoder.encoder.layer.") for n in params)
    total = sum(m.numel() for m in method.masks.values())
    assert sum(int(m.sum()) for m in method.masks.values()) == round(p * total)
    fisher = fisher_information(model, method.ctx.train_batches, params, 1.0)
    kept = torch.cat([fisher[n][m] for n, m in method.masks.items()])
    dropped = torch.cat([fisher[n][~m] for n, m in method.masks.items()])
    assert float(kept.min()) >= float(dropped.max()) and float(kept.min()) > 0
    assert all(p.grad is None for p in model.parameters())  # the Fisher pass leaves no gradient behind
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    method.after_backward(model)
    for name, param in model.named_parameters():
        expected = method.masks[name].float() if name in method.masks else torch.ones_like(param)
        assert torch.equal(param.grad, expected), name  # head, embeddings and pooler never masked


def test_fisher_is_the_mean_squared_gradient_and_top_fraction_is_exact():
    model = _model(dropout=0.0)
    ctx = _context(model, synthetic_task("classification"))
    params = {"w": model.encoder.encoder.layer[1].output.dense.weight}
    fisher = fisher_information(model, ctx.train_batches, params, grad_clip=0.0)
    squares = []
    for batch in ctx.train_batches:
        out = model(**batch)
        squares.append(torch.autograd.grad(model.task_loss(out.logits, batch["labels"]), params["w"])[0].pow(2))
    assert torch.allclose(fisher["w"], torch.stack(squares).mean(0), rtol=1e-5, atol=1e-12)
    scores = {"a": torch.tensor([[5.0, 1.0], [3.0, 0.0]]), "b": torch.tensor([4.0, 2.0, 6.0, -1.0])}
    masks = top_fraction_masks(scores, 0.5)
    assert masks["a"].tolist() == [[True, False], [True, False]] and masks["b"].tolist() == [True, False, True, False]


def test_childtuning_f_masks_freshly_each_step_and_rescales_by_one_over_p():
    p = 0.3
    method, model = _prepared("childtuning-f", {"p": p, "scope": "encoder"})
    masks = []
    for _ in range(2):
        for param in model.parameters():
            param.grad = torch.full_like(param, 2.0)
        method.after_backward(model)
        grads = torch.cat([param.grad.flatten() for n, param in model.named_parameters() if n.startswith("encoder.")])
        assert torch.isclose(grads[grads != 0], torch.tensor(2.0 * 256 / 77)).all()  # p = 0.3 → 77/256 kept
        assert abs(float((grads != 0).float().mean()) - p) < 0.01
        masks.append(grads != 0)
        assert torch.equal(model.head.weight.grad, torch.full_like(model.head.weight, 2.0))
    assert not torch.equal(masks[0], masks[1])


def test_childtuning_f_random_bytes_are_uniform_and_thresholds_round_p():
    from regbench.baselines.child_tuning import keep_threshold, random_bytes

    assert [keep_threshold(p) for p in (0.3, 0.5, 0.001, 1.0)] == [77, 128, 1, 256]
    draws = random_bytes(1_000_001, torch.Generator().manual_seed(0))
    assert draws.dtype == torch.uint8 and draws.numel() == 1_000_001
    counts = torch.bincount(draws.long(), minlength=256).float()
    assert float((counts / counts.mean() - 1).abs().max()) < 0.05  # ~3906 per value: 5% is > 3 standard deviations
    assert not torch.equal(draws[:8], random_bytes(8, torch.Generator().manual_seed(1)))


# ---- NoisyTune -------------------------------------------------------------------------------------------------
def test_noisytune_perturbation_std_is_lambda_std_over_sqrt12():
    lam = 0.2
    before = _state(_model())
    _, model = _prepared("noisytune", {"noise_lambda": lam})
    after = _state(model)
    name = "encoder.embeddings.word_embeddings.weight"  # 30522 × 32 entries
    delta, std = after[name] - before[name], before[name].std()
    assert abs(float(delta.std() / (lam * std / math.sqrt(12))) - 1) < 0.01
    assert abs(float(delta.mean())) < 0.01 * float(lam * std)
    assert float(delta.abs().max()) <= lam / 2 * float(std) * (1 + 1e-5)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert all(k.startswith("encoder.") for k in changed) and "head.weight" not in changed  # the head is left alone
    assert "encoder.encoder.layer.1.attention.self.query.weight" in changed
    assert "encoder.encoder.layer.0.output.LayerNorm.weight" not in changed  # all ones: std 0, no noise
    _, again = _prepared("noisytune", {"noise_lambda": lam})
    assert torch.equal(_state(again)[name], after[name])  # seeded


# ---- LLRD ------------------------------------------------------------------------------------------------------
def test_llrd_group_learning_rates_decay_from_head_to_embeddings():
    model, method = _model(), get_method("llrd", {"decay": 0.8})
    groups = method.param_groups(model, 1e-3, 0.01)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    names = dict(model.named_parameters())
    expected = {"head.weight": 1e-3, "encoder.pooler.dense.weight": 1e-3,
                "encoder.encoder.layer.1.attention.self.query.weight": 8e-4,
                "encoder.encoder.layer.0.output.LayerNorm.bias": 6.4e-4,
                "encoder.embeddings.word_embeddings.weight": 5.12e-4}
    for name, lr in expected.items():
        assert lr_of[id(names[name])] == pytest.approx(lr), name
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(names["head.weight"]) in decayed
    assert id(names["encoder.encoder.layer.0.output.LayerNorm.bias"]) not in decayed
    trained, method, _ = _train("llrd", {"decay": 0.8})
    initial = sorted({round(g["initial_lr"], 12) for g in method.ctx.optimizer.param_groups})
    assert initial == sorted({round(1e-3 * 0.8**d, 12) for d in range(4)})  # the schedule keeps the ratios


# ---- re-init ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooler", [True, False])
def test_reinit_changes_exactly_the_top_layers_and_the_pooler(pooler):
    before = _state(_model())
    _, model = _prepared("reinit", {"layers": 1, "reinit_pooler": pooler})
    after = _state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = {k for k in before if k.startswith("encoder.encoder.layer.1.") and k.endswith(".weight")
           and "LayerNorm" not in k}
    assert top <= changed  # every weight matrix of the top layer drawn again
    allowed = ("encoder.encoder.layer.1.", "encoder.pooler.") if pooler else ("encoder.encoder.layer.1.",)
    assert all(k.startswith(allowed) for k in changed)
    assert ("encoder.pooler.dense.weight" in changed) == pooler
    fresh = after["encoder.encoder.layer.1.intermediate.dense.weight"]
    assert abs(float(fresh.std()) - model.encoder.config.initializer_range) < 0.002  # the model's own init
    assert not after["encoder.encoder.layer.1.intermediate.dense.bias"].any()
    _, again = _prepared("reinit", {"layers": 1, "reinit_pooler": pooler})
    assert all(torch.equal(after[k], v) for k, v in _state(again).items())  # seeded


def test_reinit_deeper_than_the_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="only 2 layers"):
        _prepared("reinit", {"layers": 3})


# ---- mvcr+mixout -----------------------------------------------------------------------------------------------
def test_mvcr_mixout_composes_both_and_unplugs_both():
    method, model = _prepared("mvcr+mixout")
    mixed = [m for m in model.modules() if isinstance(m, MixLinear)]
    assert len(mixed) == 14 and {m.p for m in mixed} == {0.1}
    assert method.plugs and all(not isinstance(m, MixLinear) for m in method.plugs[0].haes.modules())
    model_dropouts = {m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout) and ".haes." not in n}
    assert model_dropouts == {0.0}
    assert {m.p for m in method.plugs[0].haes.modules() if isinstance(m, nn.Dropout)} == {0.2}  # MVCR's own
    method.finalize(model)
    plain = _model()
    assert list(model.state_dict()) == list(plain.state_dict())
    assert {type(m) for m in model.modules()} == {type(m) for m in plain.modules()}


# ---- end to end ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", ["sst2", "stsb", "conll2003"])
def test_every_method_runs_one_epoch_end_to_end(tiny_config, method, task):
    record = run(tiny_config(task, method=method, train_size=16, dev_size=8, max_test_examples=16, epochs=1))
    assert record["run_info"]["status"] in {"ok", "failed"}
    assert set(record["metrics"]["test"]) >= {"primary"}

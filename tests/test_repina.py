"""REPINA_I / REPINA_MLP (regularizers/repina.py) on the tiny random BERT with the conformance suite's synthetic
tasks."""

from __future__ import annotations

import math

import pytest
import torch

from regbench.harness.run import batching
from regbench.harness.run.method import TrainContext, get_method
from regbench.harness.run.model import TaskModel, load_pretrained
from regbench.harness.testing.probe import Probe, synthetic_data, synthetic_task
from regbench.regularizers.repina import Projection

TYPES = ("classification", "regression", "token_classification")


def setup(task_type: str, name: str = "repina_i", **params):
    """A model, a prepared method and the training features (batches of 8 in file order)."""
    pretrained = load_pretrained("tiny-random-bert")
    task, data = synthetic_task(task_type), synthetic_data(task_type)
    torch.manual_seed(0)
    model = TaskModel(pretrained, task.type, task.num_labels)
    features = data["train"]
    order = [list(range(i, min(i + 8, len(features)))) for i in range(0, len(features), 8)]

    def batches():
        return batching.iterate(features, order, 0, torch.device("cpu"))

    method = get_method(name, params)
    method.prepare(TrainContext(model, task, _Again(batches), torch.device("cpu"), 1e-3, 4, seed=3))
    return model, method, features


class _Again:
    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


def odd_batch(features):
    """A batch the cache was not filled from: other neighbours, so other padding."""
    return batching.collate([features[i] for i in (1, 4, 9, 14, 15)], 0)


@pytest.mark.parametrize("task_type", TYPES)
def test_cached_targets_equal_uncached(task_type):
    model, cached, features = setup(task_type)
    _, uncached, _ = setup(task_type, cache_targets=False)
    batch = odd_batch(features)
    assert len(cached.cache) == len(features)  # prepare filled it: one entry per (id, length)
    a, b = cached._targets(batch), uncached._targets(batch)
    rows = int(batch["attention_mask"].sum()) if task_type == "token_classification" else 5
    assert a.shape == b.shape == (rows, 32)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    model.train()
    torch.manual_seed(1)
    outputs = model(**batch)
    la, lb = (m.loss(model, batch, outputs)["repina"].detach() for m in (cached, uncached))
    assert float(la) > 0 and math.isclose(float(la), float(lb), rel_tol=1e-5)


@pytest.mark.parametrize("task_type", ["classification", "token_classification"])
def test_cached_and_uncached_training_agree(task_type):
    cached = Probe("repina_mlp").run(task_type).step_terms
    uncached = Probe("repina_mlp", {"cache_targets": False}).run(task_type).step_terms
    assert len(cached) == len(uncached) == 4
    for a, b in zip(cached, uncached, strict=True):
        assert a.keys() == b.keys() == {"task", "repina"}
        for key in a:
            assert math.isclose(a[key], b[key], rel_tol=1e-4), (key, a[key], b[key])


def test_loss_is_lambda_times_mean_squared_distance():
    model, method, features = setup("classification", lam=0.5)
    batch = odd_batch(features)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move away from the pretrained point, as training would
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    model.eval()
    outputs = model(**batch)
    with torch.no_grad():
        frozen = TaskModel(load_pretrained("tiny-random-bert"), "classification", 3).eval()(**batch).representation
    want = 0.5 * ((outputs.representation - frozen) ** 2).sum(-1).mean()
    got = method.loss(model, batch, outputs)["repina"]
    assert float(want.detach()) > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["repina_i", "repina_mlp"])
@pytest.mark.parametrize("task_type", ["classification", "token_classification"])
def test_lambda_zero_equals_std_bit_for_bit(name, task_type):
    std = Probe("std").run(task_type)
    rep = Probe(name, {"lam": 0.0}).run(task_type)
    assert [s["task"] for s in rep.step_terms] == [s["task"] for s in std.step_terms]
    assert rep.result.dev_curve == std.result.dev_curve
    assert rep.result.test.metrics == std.result.test.metrics
    a, b = rep.model.state_dict(), std.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_phi_creation_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    phi = Projection(32, 32, 0.02, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    again = Projection(32, 32, 0.02, seed=5)  # its own generator: same seed, same φ
    assert torch.equal(again.up.weight, phi.up.weight) and phi.up.weight.std() > 0.01
    z = torch.randn(4, 32)
    assert torch.equal(phi(z), z)  # zero-initialised last layer: φ starts as the identity


def test_prepare_does_not_draw_from_the_global_rng():
    torch.manual_seed(9)
    model, _, _ = setup("classification")  # builds the model after seeding 0
    torch.manual_seed(9)
    state = torch.get_rng_state()
    get_method("repina_mlp").prepare(TrainContext(model, synthetic_task("classification"), [], torch.device("cpu"),
                                                  1e-3, 4, seed=3))
    assert torch.equal(torch.get_rng_state(), state)


def test_frozen_copy_gets_no_gradient_and_phi_trains():
    model, method, features = setup("classification", "repina_mlp")
    batch = odd_batch(features)
    model.train()
    terms = method.loss(model, batch, model(**batch))
    terms["repina"].backward()
    assert method.frozen is not None and not method.frozen.training
    assert all(p.grad is None and not p.requires_grad for p in method.frozen.parameters())
    assert method.phi.down.weight.grad.abs().sum() > 0  # φ is trained jointly (W₁ waits for W₂ ≠ 0)
    groups = method.param_groups(model, 1e-3, 0.01)
    in_optimiser = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) in in_optimiser for p in method.phi.parameters())
    assert not any(id(p) in in_optimiser for p in method.frozen.parameters())


@pytest.mark.parametrize("name", ["repina_i", "repina_mlp"])
def test_finalize_leaves_a_plain_model(name):
    run = Probe(name).run("token_classification")
    plain = TaskModel(load_pretrained("tiny-random-bert"), "token_classification", 3)
    assert run.method.frozen is None and run.method.phi is None and run.method.cache == {}
    assert list(run.model.state_dict()) == list(plain.state_dict())
    assert not any(isinstance(m, Projection) for m in run.model.modules())


def test_cache_memory_is_one_float32_vector_per_example():
    _, method, features = setup("classification")
    assert method.cache_nbytes() == len(features) * 32 * 4
    _, tokens, features = setup("token_classification")
    assert tokens.cache_nbytes() == sum(len(f["input_ids"]) for f in features) * 32 * 4


def test_search_space():
    space = get_method("repina_i").search_space()
    assert set(space) == {"lr", "lam"} and (space["lam"].low, space["lam"].high, space["lam"].log) == (1e-3, 10.0, True)

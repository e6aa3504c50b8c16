"""The hook protocol: the loop calls every hook in order, logs extra loss terms, and names no method."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

from regbench.harness.api import run
from regbench.harness.run import train as train_module
from regbench.harness.run.method import METHODS, Method, register_method


class Recorder(Method):
    """Records hook calls and adds a tiny extra loss term."""

    name = "_recorder_for_tests"
    calls: list[str] = []

    def prepare(self, ctx):
        super().prepare(ctx)
        batches = list(ctx.train_batches)
        assert batches and "input_ids" in batches[0] and ctx.total_steps > 0
        type(self).calls.append("prepare")

    def param_groups(self, model, lr, weight_decay):
        type(self).calls.append("param_groups")
        return super().param_groups(model, lr, weight_decay)

    def on_epoch_start(self, model, epoch):
        type(self).calls.append(f"epoch{epoch}")

    def loss(self, model, batch, outputs):
        type(self).calls.append("loss")
        self.logs["rep_norm"] = float(outputs.representation.detach().norm(dim=-1).mean())
        return {"extra": 1e-3 * outputs.representation.pow(2).mean()}

    def after_backward(self, model):
        assert any(p.grad is not None for p in model.parameters())
        type(self).calls.append("after_backward")

    def after_step(self, model):
        type(self).calls.append("after_step")

    def finalize(self, model):
        type(self).calls.append("finalize")


@pytest.fixture
def recorder():
    register_method(Recorder)
    yield Recorder
    METHODS.unregister(Recorder.name)


def test_hooks_are_called_in_order_and_terms_logged(tiny_config, recorder):
    Recorder.calls = []
    record = run(tiny_config("rte", method=Recorder.name, train_size=16, epochs=2))
    calls = Recorder.calls
    assert calls[:3] == ["prepare", "param_groups", "epoch0"]
    steps = record["train_info"]["steps"]
    assert calls.count("loss") == calls.count("after_backward") == calls.count("after_step") == steps == 4
    assert calls.index("epoch1") > calls.index("after_step")
    assert calls[-1] == "finalize"
    losses = record["train_info"]["epoch_losses"][0]
    assert {"loss/task", "loss/extra", "method/rep_norm"} <= set(losses)


def test_the_loop_names_no_method():
    source = inspect.getsource(train_module)
    for name in METHODS.names():
        if name.startswith("_"):
            continue
        assert not re.search(rf"['\"]{re.escape(name)}['\"]", source), f"train.py mentions method {name!r}"


def test_decay_groups_exclude_bias_and_layernorm(tiny_config):
    from regbench.harness.run.model import TaskModel, load_pretrained

    model = TaskModel(load_pretrained("tiny-random-bert"), "classification", 2)
    decay, no_decay = Method().param_groups(model, 1e-3, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == sum(1 for _ in model.parameters())
    assert isinstance(decay["params"][0], torch.nn.Parameter)


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])  # clipped, and not clipped (where the multiply is skipped)
def test_clip_gradients_equals_clip_grad_norm_bit_for_bit(max_norm):
    generator = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 7, generator=generator)) for _ in range(3)]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, theirs, strict=True):
        a.grad = torch.randn(a.shape, generator=generator)
        b.grad = a.grad.clone()
    ours.append(torch.nn.Parameter(torch.zeros(2)))  # a parameter without a gradient is ignored, as by PyTorch
    train_module.clip_gradients(ours, max_norm)
    torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours, theirs, strict=False))


def test_encoder_copies_are_independent_and_leave_the_random_stream_alone():
    from regbench.harness.run.model import load_pretrained

    pretrained = load_pretrained("tiny-random-bert")
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    first, second = pretrained.build_encoder(0.1), pretrained.build_encoder(0.1)
    assert torch.equal(torch.random.get_rng_state(), before)  # building draws nothing from the run's stream
    with torch.no_grad():
        next(first.parameters()).add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(pretrained.build_encoder(0.1).parameters(), second.parameters()))
    assert pretrained.build_encoder(0.0).config.hidden_dropout_prob == 0.0
    assert second.config.hidden_dropout_prob == 0.1


def test_snapshot_copies_into_the_previous_buffers():
    model = torch.nn.Linear(3, 2)
    first = train_module.snapshot(model, None)
    buffers = {key: value.data_ptr() for key, value in first.items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(first["weight"], model.weight)  # a copy, not a view of the live weights
    second = train_module.snapshot(model, first)
    assert torch.equal(second["weight"], model.weight) and {k: v.data_ptr() for k, v in second.items()} == buffers
    model.extra = torch.nn.Linear(1, 1)  # other keys (a method added a module): a fresh copy
    assert "extra.weight" in train_module.snapshot(model, second)

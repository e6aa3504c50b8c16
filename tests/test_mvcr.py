"""MVCR (regularizers/mvcr.py): placement, plug-out, path frequencies, the two phases and end-to-end runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from mechanism_helpers import deeper_pretrained

from regbench.harness.api import run
from regbench.harness.core.errors import ConfigError
from regbench.harness.io import records
from regbench.harness.run.method import TrainContext, get_method
from regbench.harness.run.model import Pretrained, TaskModel, load_pretrained
from regbench.harness.run.train import TrainConfig, train
from regbench.harness.testing import probe
from regbench.regularizers._hae import AEPlug, draw_paths
from regbench.regularizers.mvcr import _masked_recon, ae_layers, scaled_widths, unplug


def _pretrained(layers: int = 2) -> Pretrained:
    """The tiny random BERT, or a deeper random one (several AE layers) with the same width."""
    return load_pretrained("tiny-random-bert") if layers == 2 else deeper_pretrained(layers)


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 8000, (4, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding, so the masked reconstruction loss is exercised
    mask[3, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.tensor([0, 1, 2, 1])}


def _plugged(pretrained: Pretrained | None = None, seed: int = 3, **params):
    """A task model with MVCR prepared on it (phase 2 unless told otherwise) and a plain twin with the same weights."""
    pretrained = pretrained or _pretrained()
    plain = TaskModel(pretrained, "classification", 3, head_seed=0)
    model = TaskModel(pretrained, "classification", 3, head_seed=0)
    method = get_method("mvcr", params)
    method.num_epochs(3)
    method.prepare(TrainContext(model, None, [], torch.device("cpu"), 1e-3, 10, seed))
    return model, plain, method


def _renamed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if ".haes." not in k}


def test_layers_and_widths_follow_the_reference():
    assert ae_layers(12, 3, [6, 8, 11], 12) == [6, 8, 11]
    assert ae_layers(6, 3, [6, 8, 11], 12) == [3, 4, 5]
    assert ae_layers(6, 1, [6, 8, 11], 12) == [5]
    assert ae_layers(2, 3, [6, 8, 11], 12) == [1]
    assert scaled_widths([128, 256, 512], 768, 768) == [128, 256, 512]
    assert scaled_widths([128, 256, 512], 384, 768) == [64, 128, 256]
    assert scaled_widths([128, 256, 512], 32, 768) == [6, 10, 22]
    assert scaled_widths([1], 32, 768) == [2]


def test_config_and_search_space():
    space = get_method("mvcr").search_space()
    layers = space["n_layers_with_ae"]
    assert set(space) == {"lr", "n_layers_with_ae"} and (layers.low, layers.high) == (1, 3)
    with pytest.raises(ConfigError):
        get_method("mvcr", {"n_layers_with_ae": 4})
    assert get_method("mvcr").num_epochs(3) == 4 and get_method("mvcr").num_epochs(50) == 52


def test_path_frequencies_match_the_reference_distribution():
    n = 200_000
    paths = draw_paths(n, 3, torch.Generator().manual_seed(0))
    counts = torch.bincount(paths, minlength=4).double() / n
    for got, want in zip(counts.tolist(), [0.2, 0.2, 0.2, 0.4], strict=True):
        assert abs(got - want) < 5 * math.sqrt(want * (1 - want) / n), counts  # 5 binomial standard deviations


def test_eval_logits_bit_identical_before_and_after_unplug():
    model, plain, method = _plugged(_pretrained(4))
    batch = _batch()
    method.on_epoch_start(model, method.warmup)  # phase 2: one real training step moves every weight
    model.train()
    out = model(**batch)
    loss = model.task_loss(out.logits, batch["labels"])
    method.loss(model, batch, out)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    method.after_step(model)
    plain.load_state_dict(_renamed(model.state_dict()))  # the plain model with the same (trained) weights
    model.eval(), plain.eval()
    with torch.no_grad():
        want = plain(**batch).logits
        assert torch.equal(model(**batch).logits, want)
        model.train(), plain.train()
        torch.manual_seed(0)
        noisy = model(**batch).logits
        torch.manual_seed(0)
        assert not torch.allclose(noisy, plain(**batch).logits)  # in training the plugs are active
        method.finalize(model)
        model.eval(), plain.eval()
        assert torch.equal(model(**batch).logits, want)


def test_unplug_leaves_the_plain_architecture():
    model, plain, method = _plugged(_pretrained(4))
    plugs = [m for m in model.modules() if isinstance(m, AEPlug)]
    assert len(plugs) == 2 and all(len(p.haes) == 3 for p in plugs)  # 4 layers → layers {2, 3}
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in plain.parameters())
    groups = method.param_groups(model, 1e-3, 0.01)
    in_main = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) in in_main for p in method.ae_parameters())  # task-loss gradients train the AEs in phase 2
    method.on_epoch_start(model, 0)  # a finalize in the middle of the warm-up restores requires_grad too
    assert unplug(model) == 2 and unplug(model) == 0
    method.finalize(model)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    assert list(model.state_dict()) == list(plain.state_dict())
    assert [type(m) for m in model.modules()] == [type(m) for m in plain.modules()]
    assert all(p.requires_grad for p in model.parameters())
    assert not any(vars(m).get("cache") for m in model.modules())


def test_warmup_trains_only_the_autoencoders():
    task, data = probe.synthetic_task("classification"), probe.synthetic_data("classification")
    pretrained = load_pretrained("tiny-random-bert")
    torch.manual_seed(0)
    model = TaskModel(pretrained, task.type, task.num_labels, head_seed=0)
    method = get_method("mvcr")
    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    start = method.on_epoch_start

    def spy(model, epoch):  # epoch 0: the plugged model's starting weights; epoch 1: after the AE-only warm-up
        # (dev is not evaluated during the warm-up, an extra phase, so the first epoch's end is seen from here)
        snapshots["start" if epoch == 0 else "warm"] = {k: v.clone() for k, v in model.state_dict().items()}
        start(model, epoch)

    method.on_epoch_start = spy
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-3, device="cpu", precision="fp32")
    result = train(model, method, task, data, config, 0, pretrained.tokenizer.pad_token_id)
    before, after = snapshots["start"], snapshots["warm"]
    ae_keys = [k for k in before if ".haes." in k]
    assert ae_keys and all(torch.equal(before[k], after[k]) for k in before if k not in ae_keys)
    assert all(not torch.equal(before[k], after[k]) for k in ae_keys if ".subs." not in k)
    assert result.epoch_losses[0]["method/recon"] > 0


def test_warmup_drops_the_task_gradients():
    model, _, method = _plugged()
    method.on_epoch_start(model, 0)
    assert method.warmup == 1 and method._in_warmup
    model.train()
    batch = _batch()
    out = model(**batch)
    method.loss(model, batch, out)
    model.task_loss(out.logits, batch["labels"]).backward()
    assert any(p.grad is not None for p in method.ae_parameters())  # the task loss reaches the AEs ...
    method.after_backward(model)
    assert all(p.grad is None for p in model.parameters())  # ... but the main optimiser gets nothing in phase 1
    assert any(g is not None and g.abs().sum() > 0 for _, g in method._grads)  # the AE optimiser does


def test_reconstruction_gradient_reaches_only_the_autoencoders():
    grads, recon = {}, {}
    for with_recon in (True, False):
        model, _, method = _plugged(_pretrained(4))
        method.on_epoch_start(model, method.warmup)  # phase 2
        model.train()
        torch.manual_seed(5)
        batch = _batch()
        out = model(**batch)
        if with_recon:
            caches = [p.cache for p in method.plugs]
            mask = out.attention_mask.unsqueeze(-1).float()
            losses = [_masked_recon(*c, mask) for c in caches]
            own = [torch.autograd.grad(loss, method.ae_parameters(p), retain_graph=True, allow_unused=True)
                   for loss, p in zip(losses, method.plugs, strict=True)]
            terms = method.loss(model, batch, out)
            assert all(not t.requires_grad for t in terms.values())  # nothing for the loop's backward
            recon = {id(p): g for p, g in method._grads}
            expected = [g for layer in own for g in layer]
            assert all((a is None and b is None) or torch.equal(a, b)
                       for a, b in zip(expected, [g for _, g in method._grads], strict=True))
            # the lower layer's AEs also influence the upper layer's loss: a summed loss would have differed
            lower = method.ae_parameters(method.plugs[0])
            leak = torch.autograd.grad(losses[1], lower, retain_graph=True, allow_unused=True)
            assert any(g is not None and g.abs().sum() > 0 for g in leak)
        model.task_loss(out.logits, batch["labels"]).backward()
        grads[with_recon] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        if with_recon:
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            model.zero_grad(set_to_none=True)  # the main optimiser would have stepped and cleared them here
            method.after_step(model)
            changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
            assert changed and all(".haes." in n for n in changed)
    assert grads[True].keys() == grads[False].keys()
    assert all(torch.equal(grads[True][n], grads[False][n]) for n in grads[True])  # PLM, head and AE task grads
    assert any(g is not None and g.abs().sum() > 0 for g in recon.values())


@pytest.mark.parametrize("task", ["sst2", "stsb", "conll2003"])
def test_end_to_end_on_each_task_type(tiny_config, task):
    record = run(tiny_config(task, method="mvcr", epochs=1))
    records.validate_record(record)
    assert Path(record["_path"]).exists()
    assert record["run_info"]["status"] in {"ok", "failed"}
    # one AE warm-up epoch + the profile's epoch, evaluated once: the warm-up is not part of the main phase
    assert len(record["train_info"]["epoch_seconds"]) == 2
    assert [p["epoch"] for p in record["train_info"]["dev_curve"]] == [2]
    assert record["train_info"]["epoch_losses"][1]["method/recon"] > 0
    assert record["metrics"]["test"] is not None


def test_reconstruction_loss_is_the_mean_squared_error_over_real_positions_and_hidden_units():
    generator = torch.Generator().manual_seed(5)
    noisy, out = torch.randn(2, 5, 7, generator=generator), torch.randn(2, 5, 7, generator=generator)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).unsqueeze(-1).float()  # 8 real positions of 10
    want = ((out - noisy).pow(2) * mask).sum() / (8 * 7)  # hidden width 7 ≠ length 5: the divisor shows
    assert float(_masked_recon(noisy, [out, out], mask)) == pytest.approx(float(want), rel=1e-6)
    assert float(_masked_recon(noisy, [out], torch.zeros_like(mask))) == 0.0  # an all-padding batch: zero, not NaN

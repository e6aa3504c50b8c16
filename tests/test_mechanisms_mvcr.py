"""Mechanism tests of MVCR and MVCR+Mixout (see tests/test_mechanisms.py): the random views of the
hierarchical autoencoders, the training noise, and the AE optimiser's learning rate, checked on the plugs
``prepare`` installs."""

from __future__ import annotations

import math

import pytest
import torch
from mechanism_helpers import LR, ONE_STEP, SEED, first_step, largest_update, pad_id, prepared, tiny_model, with_config
from torch import nn

from regbench.baselines.mixout import MixLinear
from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import get_method
from regbench.harness.run.train import train
from regbench.harness.testing.probe import synthetic_data, synthetic_task
from regbench.regularizers._hae import path_probabilities

NAMES = ("mvcr", "mvcr+mixout")
FORWARDS = 300


def _x(rows: int = 2, length: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, length, 32, generator=torch.Generator().manual_seed(seed))


def _within(count: float, total: int, p: float, sigmas: float = 5.0) -> bool:
    """``count`` of ``total`` Bernoulli(p) draws lies within ``sigmas`` binomial standard deviations."""
    return abs(count - total * p) <= sigmas * math.sqrt(total * p * (1 - p))


@pytest.mark.parametrize("name", NAMES)
def test_inner_view_is_uniform_over_both_sub_autoencoders_and_the_identity(name):
    method, _ = prepared(name)
    plug, calls = method.plugs[0], [0, 0]
    for hae in plug.haes:  # count the sub-AE forwards; an HAE forward without one took the identity view
        for i, sub in enumerate(hae.subs):
            sub.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    plug.train()
    with torch.no_grad():
        for _ in range(FORWARDS):
            plug(_x())
    total = FORWARDS * len(plug.haes)
    identity = total - sum(calls)
    for count in (*calls, identity):
        assert _within(count, total, 1 / 3), (calls, identity, total)


@pytest.mark.parametrize("name", NAMES)
def test_outer_path_per_position_is_shared_by_the_batch_with_reference_probabilities(name):
    method, _ = prepared(name)
    plug = method.plugs[0]
    plug.train()
    counts = torch.zeros(len(plug.haes) + 1)
    with torch.no_grad():
        for _ in range(FORWARDS // 2):
            out = plug(_x(rows=3))
            noisy, outs = plug.cache
            views = [*outs, noisy]  # the identity path is the noisy input itself
            for t in range(out.shape[1]):
                # The whole batch (all rows and features) at position t is exactly one view: a shared choice.
                hits = [k for k, view in enumerate(views) if torch.equal(out[:, t], view[:, t])]
                assert len(hits) == 1, hits
                counts[hits[0]] += 1
    n = len(plug.haes)
    total = int(counts.sum())
    for k, count in enumerate(counts.tolist()):  # each HAE 1/(2N−1), identity (N−1)/(2N−1)
        assert _within(count, total, (n - 1 if k == n else 1) / (2 * n - 1)), counts


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("noise_std", [0.002, 0.02])
def test_training_noise_has_noise_std_everywhere_and_is_absent_in_eval(name, noise_std):
    method, model = prepared(name, {"noise_std": noise_std})
    x = _x(rows=4, length=16)
    for plug in method.plugs:
        plug.train()
        with torch.no_grad():
            plug(x)
        noise = (plug.cache[0] - x).double()  # the model's dropout is 0 here: h = x before the noise
        assert float(noise.std()) == pytest.approx(noise_std, rel=0.08)
        assert abs(float(noise.mean())) < 0.1 * noise_std and bool((noise != 0).all())
        plug.eval()
        with torch.no_grad():
            assert torch.equal(plug(x), x)  # eval: the plain sub-layer's tensor, no noise, no AE
    if (
        name == "mvcr+mixout"
    ):  # the composition: Mixout 0.1 on the PLM, the model's dropout off, the AEs' kept
        assert {m.p for m in model.modules() if isinstance(m, MixLinear)} == {0.1}
        ae_dropouts = {id(m) for plug in method.plugs for m in plug.haes.modules()}
        assert {m.p for m in model.modules() if isinstance(m, nn.Dropout) and id(m) not in ae_dropouts} == {
            0.0
        }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("multiplier", [50.0, 10.0])
def test_autoencoder_optimiser_steps_at_multiplier_times_the_base_lr(name, multiplier):
    # The first step is in the AE warm-up: the PLM and head are frozen, only the AE AdamW steps (constant LR).
    before, after, method = first_step(name, {"ae_lr_multiplier": multiplier, "ae_weight_decay": 0.0})
    ae = [n for n in before if ".haes." in n]
    assert ae and largest_update(before, after, ae) == pytest.approx(multiplier * LR, rel=0.01)
    assert largest_update(before, after, [n for n in before if n not in ae]) == 0.0


def _main_lrs_after_each_step(name: str, warmup_ratio: float) -> tuple[list[float], int, int]:
    """The main optimiser's LR for the next step, read after every step of a real run (AE warm-up, then phase 2),
    with the run's steps per epoch and its AE warm-up epochs."""
    method, model = get_method(name), tiny_model()
    lrs, after_step = [], method.after_step

    def spy(m):
        after_step(m)
        lrs.append(method.main_optimizer().param_groups[0]["lr"])

    method.after_step = spy
    # Two main epochs after one AE epoch: phase 2 is longer than phase 1, so counting its steps from the wrong origin
    # (or modulo the warm-up length) shows.
    config = with_config(ONE_STEP, epochs=2, warmup_ratio=warmup_ratio)
    train(model, method, synthetic_task("classification"), synthetic_data("classification"), config, SEED, pad_id())
    return lrs, len(lrs) // (method.warmup + config.epochs), method.warmup


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("warmup_ratio", [0.0, 0.5])
def test_phase_two_restarts_the_linear_schedule_at_its_own_first_step(name, warmup_ratio):
    # After the AE-only epochs the main LR schedule starts over (warm-up, then linear decay to zero) over phase 2's
    # steps alone, as if phase 2 were the whole run: written out here, not through the module's helper.
    lrs, per_epoch, ae_epochs = _main_lrs_after_each_step(name, warmup_ratio)
    start, steps = ae_epochs * per_epoch, len(lrs) - ae_epochs * per_epoch
    warm = math.ceil(warmup_ratio * steps)
    for k in range(steps):  # lrs[start - 1 + k] is the LR of phase 2's step k
        want = k / max(1, warm) if k < warm else max(0.0, (steps - k) / max(1, steps - warm))
        assert lrs[start - 1 + k] == pytest.approx(LR * want, abs=1e-12), (k, lrs)


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("ae_dropout", 0.0, True), ("ae_dropout", 0.5, True), ("ae_dropout", 1.0, False), ("ae_dropout", 1.5, False),
    ("ae_dropout", -0.1, False),
    ("noise_std", 0.0, True), ("noise_std", -1e-3, False),
    ("ae_lr_multiplier", 1e-3, True), ("ae_lr_multiplier", 0.0, False),
    ("n_layers_with_ae", 1, True), ("n_layers_with_ae", 0, False), ("n_layers_with_ae", 4, False),
])
def test_config_bounds_are_inclusive_exactly_where_the_method_allows(field, value, valid):
    if valid:
        assert getattr(get_method("mvcr", {field: value}).config, field) == value
    else:
        with pytest.raises(ConfigError, match=field):
            get_method("mvcr", {field: value})


@pytest.mark.parametrize("n_haes", [1, 2, 3, 5])
def test_outer_path_probabilities_are_a_distribution_with_the_identity_taking_the_rest(n_haes):
    # The multinomial draw would normalise any positive weights; the function's contract is the distribution itself.
    probabilities = path_probabilities(n_haes)
    share = 1 / (2 * n_haes - 1)
    assert probabilities.tolist() == pytest.approx([share] * n_haes + [(n_haes - 1) * share])
    assert float(probabilities.sum()) == pytest.approx(1.0)

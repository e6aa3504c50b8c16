"""Method-specific tests of LP-FT, L2-SP, SMART, R3F, R4F and Freeze on the tiny random BERT (seconds each)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from optuna.distributions import FloatDistribution
from torch import nn

from regbench.baselines.child_tuning import keep_threshold
from regbench.baselines.mixout import apply_mixout
from regbench.harness.api import run
from regbench.harness.core.errors import ConfigError
from regbench.harness.run.method import METHODS as REGISTRY
from regbench.harness.run.method import get_method
from regbench.harness.run.model import TINY_MODEL, TaskModel, load_pretrained
from regbench.harness.run.train import TrainConfig, train
from regbench.harness.testing.probe import synthetic_data, synthetic_task

METHODS = ("lp-ft", "l2-sp", "smart", "r3f", "r4f", "freeze")
SEED = 3
CONFIG = TrainConfig(epochs=2, batch_size=8, lr=1e-3, eval_batch_size=8, device="cpu", precision="fp32")


@dataclasses.dataclass
class Trained:
    model: TaskModel
    method: Any
    steps: list[dict[str, torch.Tensor]]  # the method's loss terms per step
    epoch_start: list[dict[str, torch.Tensor]]  # model state at the start of each epoch


def _train(name: str, params: dict[str, Any] | None = None, task_type: str = "classification", dropout: float = 0.1,
           config: TrainConfig = CONFIG) -> Trained:
    """Train through the real loop on the conformance suite's synthetic task, recording terms and epoch snapshots."""
    method = get_method(name, params)
    trained = Trained(None, method, [], [])  # type: ignore[arg-type]
    loss, on_epoch_start = method.loss, method.on_epoch_start

    def record_loss(model, batch, outputs):
        terms = loss(model, batch, outputs)
        trained.steps.append({k: v.detach().clone() for k, v in terms.items()})
        return terms

    def snapshot(model, epoch):
        trained.epoch_start.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        on_epoch_start(model, epoch)

    method.loss, method.on_epoch_start = record_loss, snapshot
    task, pretrained = synthetic_task(task_type), load_pretrained(TINY_MODEL)
    torch.manual_seed(SEED)
    trained.model = TaskModel(pretrained, task.type, task.num_labels, dropout=dropout, head_seed=SEED)
    train(trained.model, method, task, synthetic_data(task_type), config, SEED, pretrained.tokenizer.pad_token_id)
    return trained


def _encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("encoder.")}


def _pretrained_encoder() -> dict[str, torch.Tensor]:
    model = TaskModel(load_pretrained(TINY_MODEL), "classification", 3)
    return _encoder_state(model.state_dict())


def _assert_states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_registered_names_configs_and_search_spaces():
    for name in METHODS:
        method = get_method(name)
        space = type(method).search_space()
        assert "lr" in space
        fields = {f.name for f in dataclasses.fields(method.config)}
        assert set(space) - {"lr"} <= fields, f"{name}: searched parameters must be config fields"
    assert get_method("LP_FT").name == "lp-ft" and get_method("L2_SP").name == "l2-sp"
    assert get_method("freeze").search_space()["lr"].low == 1e-3


def test_l2sp_alpha_zero_equals_std_bit_for_bit():
    std = _train("std")
    l2sp = _train("l2-sp", {"alpha": 0.0, "encoder_weight_decay": CONFIG.weight_decay})
    assert all(float(step["l2sp"]) == 0.0 for step in l2sp.steps)
    _assert_states_equal(l2sp.model.state_dict(), std.model.state_dict())


def test_l2sp_pulls_toward_pretrained_and_reports_the_penalty():
    config = dataclasses.replace(CONFIG, epochs=3, warmup_ratio=0.0)  # no zero-LR first step: w leaves w0 at once
    free = _train("l2-sp", {"alpha": 0.0}, config=config)
    pulled = _train("l2-sp", {"alpha": 0.5}, config=config)
    start = _pretrained_encoder()

    def distance(state):  # weights at the start of the last epoch (the final ones are the best epoch's)
        state = _encoder_state(state)
        return sum(float((state[k] - start[k]).pow(2).sum()) for k in start)

    assert 0 < distance(pulled.epoch_start[-1]) < distance(free.epoch_start[-1])
    # The first step sees w = w0 (zero penalty); the second one the penalty of the weights after one update.
    assert float(pulled.steps[0]["l2sp"]) == 0.0 and float(pulled.steps[1]["l2sp"]) > 0.0


def test_l2sp_row_wise_embeddings_train_exactly_like_the_dense_penalty():
    config = dataclasses.replace(CONFIG, epochs=3, warmup_ratio=0.0)
    dense = _train("l2-sp", {"alpha": 0.5, "sparse_embedding_rows": False}, config=config)
    rows = _train("l2-sp", {"alpha": 0.5, "sparse_embedding_rows": True}, config=config)
    assert rows.method._rows is None and len(rows.method.params) == 0  # released by finalize
    _assert_states_equal(rows.model.state_dict(), dense.model.state_dict())
    penalties = [(float(a["l2sp"]), float(b["l2sp"])) for a, b in zip(rows.steps, dense.steps, strict=True)]
    assert penalties[-1][1] > 0 and all(a == pytest.approx(b, rel=1e-5) for a, b in penalties)


@pytest.mark.parametrize("task_type", ["classification", "regression", "token_classification"])
def test_smart_and_r3f_add_exactly_zero_without_noise_and_dropout(task_type):
    for name, params, term in [("r3f", {"eps": 0.0}, "r3f"),
                               ("smart", {"noise_std": 0.0, "step_size": 0.0}, "smart")]:
        quiet = _train(name, params, task_type, dropout=0.0)
        assert quiet.steps and all(float(step[term]) == 0.0 for step in quiet.steps), (name, task_type)
        noisy = _train(name, {}, task_type, dropout=0.1)  # defaults: the term must be live
        assert all(float(step[term]) > 0.0 for step in noisy.steps), (name, task_type)


def test_r3f_uniform_and_normal_noise_differ():
    uniform = _train("r3f", {"noise_type": "uniform", "eps": 1e-2}, dropout=0.0)
    normal = _train("r3f", {"noise_type": "normal", "eps": 1e-2}, dropout=0.0)
    assert float(uniform.steps[0]["r3f"]) != float(normal.steps[0]["r3f"])
    with pytest.raises(Exception, match="noise_type"):
        get_method("r3f", {"noise_type": "laplace"})


def test_smart_bregman_term_is_off_by_default_and_works_when_on():
    assert "bregman" not in _train("smart", {}, dropout=0.0).steps[0]
    on = _train("smart", {"bregman_weight": 1.0}, dropout=0.0)
    # The teacher starts as the model itself (no dropout: identical logits), then lags behind it.
    assert float(on.steps[0]["bregman"]) == 0.0 and float(on.steps[-1]["bregman"]) > 0.0
    assert on.method.teacher is None  # released in finalize


def test_lp_ft_stage_one_changes_only_the_head():
    # 3 epochs of 2 steps, a third of them in stage 1: the second epoch starts exactly at the stage boundary.
    trained = _train("lp-ft", {"lp_fraction": 1 / 3, "head_lr": 0.05}, config=dataclasses.replace(CONFIG, epochs=3))
    start, boundary, later = trained.epoch_start
    _assert_states_equal(_encoder_state(boundary), _pretrained_encoder())
    assert not torch.equal(boundary["head.weight"], start["head.weight"])
    tuned = _encoder_state(later)
    assert any(not torch.equal(tuned[k], boundary[k]) for k in tuned), "stage 2 must fine-tune the encoder"
    assert all(p.requires_grad for p in trained.model.parameters())


def test_lp_ft_with_no_probe_stage_is_std_bit_for_bit():
    lpft = _train("lp-ft", {"lp_fraction": 0.0, "stage_warmup_ratio": CONFIG.warmup_ratio})
    _assert_states_equal(lpft.model.state_dict(), _train("std").model.state_dict())


def test_freeze_never_changes_the_encoder():
    trained = _train("freeze", config=dataclasses.replace(CONFIG, lr=0.05))
    final = trained.model.state_dict()
    _assert_states_equal(_encoder_state(final), _pretrained_encoder())
    assert not torch.equal(final["head.weight"], trained.epoch_start[0]["head.weight"])
    assert all(p.requires_grad for p in trained.model.parameters())


def test_r4f_finalize_leaves_a_plain_normalised_linear_head():
    trained = _train("r4f")
    head = trained.model.head
    assert type(head) is nn.Linear
    assert list(trained.model.state_dict()) == list(_train("std").model.state_dict())
    sigma = torch.linalg.matrix_norm(head.weight.detach(), ord=2)
    assert abs(float(sigma) - 1.0) < 0.05  # the kept weight is W / σ(W) from the last power iteration


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", ["sst2", "stsb", "conll2003"])
def test_every_method_runs_one_epoch_end_to_end(tiny_config, method, task):
    record = run(tiny_config(task, method=method, train_size=8, dev_size=8, max_test_examples=8, epochs=1))
    assert record["run_info"]["status"] in {"ok", "failed"}
    assert set(record["metrics"]["test"]) >= {"primary"}


@pytest.mark.parametrize(("momentum", "valid"), [(0.0, True), (0.99, True), (1.0, True), (-0.01, False),
                                                  (1.01, False)])
def test_smart_bregman_momentum_accepts_exactly_the_closed_unit_interval(momentum, valid):
    if valid:
        assert get_method("smart", {"bregman_momentum": momentum}).config.bregman_momentum == momentum
    else:
        with pytest.raises(ConfigError, match="bregman_momentum"):
            get_method("smart", {"bregman_momentum": momentum})


@pytest.mark.parametrize("name", [name for name in REGISTRY.names() if not name.startswith("_")])
def test_search_ranges_spanning_decades_are_searched_on_a_log_scale(name):
    # A range over ≥ 2 decades searched uniformly spends almost every trial in its top decade (METHODS.md gives
    # these ranges as log-uniform).
    for param, distribution in get_method(name).search_space().items():
        if isinstance(distribution, FloatDistribution) and distribution.low > 0 \
                and distribution.high / distribution.low >= 100:
            assert distribution.log, f"{name}: {param} spans {distribution.low}–{distribution.high} uniformly"


SHARED_LR = (1e-5, 5e-4, True)
# Every tuned range of ../shared/METHODS.md, written out from the spec (not read from the modules): (low, high, log).
SPEC_RANGES: dict[str, dict[str, tuple]] = {
    "std": {}, "std++": {"lr": (1e-5, 1e-4, True)}, "lp_ft": {"head_lr": (1e-3, 1e-1, True)},
    "l2_sp": {"alpha": (1e-4, 1.0, True)}, "smart": {"lam": (0.1, 10.0, True), "step_size": (1e-5, 1e-3, True)},
    "r3f": {"lam": (0.1, 5.0, True)}, "r4f": {"lam": (0.1, 5.0, True)}, "freeze": {"lr": (1e-3, 1e-1, True)},
    "repina_i": {"lam": (1e-3, 10.0, True)}, "repina_mlp": {"lam": (1e-3, 10.0, True)},
    "mvcr": {"n_layers_with_ae": (1, 3, False)}, "mvcr+mixout": {"n_layers_with_ae": (1, 3, False)},
    "mixout": {"p": (0.1, 0.9, False)}, "childtuning_d": {"p": (0.1, 0.5, False)},
    "childtuning_f": {"p": (0.1, 0.5, False)}, "noisytune": {"noise_lambda": (0.05, 0.3, False)},
    "llrd": {"decay": (0.7, 1.0, False)}, "reinit": {"layers": (1, 3, False)},
}


@pytest.mark.parametrize("name", sorted(SPEC_RANGES))
def test_search_space_is_the_one_methods_md_specifies(name):
    space = get_method(name).search_space()
    numeric = {param: (d.low, d.high, d.log) for param, d in space.items() if hasattr(d, "low")}
    assert numeric == {"lr": SHARED_LR, **SPEC_RANGES[name]}
    assert set(REGISTRY.names()) - {n for n in REGISTRY.names() if n.startswith("_")} <= set(SPEC_RANGES)


@pytest.mark.parametrize(("name", "field", "value", "valid"), [
    ("lp-ft", "lp_fraction", 0.0, True), ("lp-ft", "lp_fraction", 1.0, True), ("lp-ft", "lp_fraction", -0.01, False),
    ("lp-ft", "lp_fraction", 1.01, False), ("lp-ft", "stage_warmup_ratio", 0.0, True),
    ("lp-ft", "stage_warmup_ratio", 0.99, True), ("lp-ft", "stage_warmup_ratio", 1.0, False),
    ("lp-ft", "stage_warmup_ratio", 1.5, False), ("lp-ft", "stage_warmup_ratio", -0.01, False),
    ("r3f", "lam", 0.0, True), ("r3f", "lam", -0.5, False), ("r3f", "eps", 0.0, True), ("r3f", "eps", -1e-6, False),
    ("childtuning_d", "p", 0.0, False), ("childtuning_d", "p", 1.0, True), ("childtuning_d", "p", 1.01, False),
    ("llrd", "decay", 0.0, False), ("llrd", "decay", 1.0, True), ("llrd", "decay", 1.01, False),
    ("mixout", "p", 0.0, True), ("mixout", "p", -0.5, False), ("mixout", "p", 1.0, False), ("mixout", "p", 1.5, False),
    ("reinit", "layers", 0, True), ("reinit", "layers", -1, False),
    ("mvcr+mixout", "mixout_p", 0.0, True), ("mvcr+mixout", "mixout_p", 0.5, True),
    ("mvcr+mixout", "mixout_p", 1.0, False), ("mvcr+mixout", "mixout_p", 1.5, False),
    ("mvcr+mixout", "mixout_p", -0.5, False),
])
def test_config_bounds_hold_exactly_at_their_edges(name, field, value, valid):
    if valid:
        assert getattr(get_method(name, {field: value}).config, field) == value
    else:
        with pytest.raises(ConfigError):
            get_method(name, {field: value})


@pytest.mark.parametrize("p", [-0.5, 1.0, 1.5])
def test_apply_mixout_refuses_a_probability_outside_the_half_open_unit_interval(p):
    with pytest.raises(ConfigError, match="mixout probability"):
        apply_mixout(nn.Linear(2, 2), p, torch.Generator())


@pytest.mark.parametrize(("p", "threshold"), [(0.45, 115), (0.1, 26), (1.0, 256), (0.001, 1)])
def test_childtuning_f_keeps_a_byte_below_the_closest_threshold_to_p(p, threshold):
    # P(keep) = threshold / 256: 0.45 → 115 (115.2 rounded), never 0 (no gradient at all) nor above 256.
    assert keep_threshold(p) == threshold


def test_apply_mixout_counts_every_linear_it_wraps_and_every_one_remove_swaps_back():
    model = TaskModel(load_pretrained(TINY_MODEL), "classification", 3)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    plug = apply_mixout(model, 0.1, torch.Generator())
    assert linears > 1 and plug.wrapped == linears
    assert plug.remove() == linears and sum(isinstance(m, nn.Linear) for m in model.modules()) == linears


@pytest.mark.parametrize("name", sorted(SPEC_RANGES))
def test_every_method_declares_a_positive_step_cost_for_plan(name):
    # plan multiplies a run's STD time by it; zero or less would estimate a free (or negative) run.
    assert type(get_method(name)).relative_step_cost > 0


def test_std_plus_plus_trains_twice_the_profiles_epochs_by_default():
    # METHODS.md: STD++ is "2× the profile's epochs" — the train-longer half of its definition.
    assert get_method("std++").num_epochs(3) == 6 and get_method("std++").num_epochs(1) == 2

"""The conformance suite over every registered method (harness/testing/conformance.py), plus proof that each check
can fail.

A registered method without a golden file fails ``golden_losses`` with the command that generates it:
``python -m regbench.harness.testing.conformance --update-golden NAME``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from regbench.harness.run.method import METHODS, Method, MethodConfig, decay_groups, hparam, register_method
from regbench.harness.testing import conformance

NAMES = [name for name in METHODS.names() if not name.startswith("_")]
_PROBES: dict[str, conformance.Probe] = {}  # one set of runs per method, shared by its checks


def probe(name: str) -> conformance.Probe:
    return _PROBES.setdefault(name, conformance.Probe(name))


@pytest.mark.parametrize("check", list(conformance.CHECKS))
@pytest.mark.parametrize("name", NAMES)
def test_method_conforms(name: str, check: str) -> None:
    result = conformance.CHECKS[check](name, probe=probe(name))
    assert result.passed, f"{name}: {check}: {result.detail}"


# ---- the checks catch what they claim to catch --------------------------------------------------------------------
@dataclass(frozen=True)
class _BadConfig(MethodConfig):
    fault: str = hparam("", "which rule to break")


class _Bad(Method):
    """Breaks one conformance rule on request."""

    name = "_bad_for_tests"
    config_class = _BadConfig

    def prepare(self, ctx):
        super().prepare(ctx)
        self.ref = nn.Linear(32, 32)
        if self.config.fault == "extra_module":
            ctx.model.extra = nn.Identity()
        if self.config.fault == "unowned_param":
            ctx.model.stray = nn.Parameter(torch.zeros(1))

    def frozen_modules(self):
        return [self.ref.eval().requires_grad_(False)] if self.config.fault != "frozen_grad" else [self.ref]

    def loss(self, model, batch, outputs):
        rep = outputs.representation.reshape(-1, 32)
        terms = {}
        if self.config.fault == "frozen_grad":
            terms["ref"] = self.ref(rep).pow(2).mean()
        if self.config.fault == "unowned_param":
            terms["stray"] = model.stray.pow(2).sum()
        if self.config.fault == "nan":
            terms["nan"] = rep.sum() * float("nan")
        if self.config.fault == "random":  # an unseeded draw: runs with the same seed differ
            generator = torch.Generator().manual_seed(time.time_ns() % 2**31)
            terms["noise"] = rep.pow(2).mean() * float(torch.rand((), generator=generator))
        return terms

    def param_groups(self, model, lr, weight_decay):
        return decay_groups([(n, p) for n, p in model.named_parameters() if n != "stray"], weight_decay)


@pytest.fixture
def bad():
    register_method(_Bad)
    yield _Bad.name
    METHODS.unregister(_Bad.name)


@pytest.mark.parametrize(("fault", "check", "message"), [
    ("frozen_grad", "gradient_flow", "frozen module 0"),
    ("unowned_param", "gradient_flow", "stray gets a gradient but no optimiser owns it"),
    ("extra_module", "plain_architecture", "module types a plain model lacks"),
    ("nan", "finite_losses", "non-finite"),
    ("random", "determinism", "step losses differ"),
])
def test_checks_fail_on_broken_methods(bad, fault, check, message):
    result = conformance.CHECKS[check](bad, {"fault": fault})
    assert not result.passed and message in result.detail, result.detail


def test_golden_check_fails_on_a_changed_number(tmp_path):
    conformance.update_golden("std", golden_dir=tmp_path)
    assert conformance.golden_losses("std", golden_dir=tmp_path).passed
    path = conformance.golden_path("std", tmp_path)
    golden = json.loads(path.read_text())
    golden["steps"]["regression"][2]["task"] *= 1 + 1e-4  # ten times the tolerance
    path.write_text(json.dumps(golden))
    result = conformance.golden_losses("std", golden_dir=tmp_path)
    assert not result.passed and "regression step 3 term 'task'" in result.detail, result.detail


def test_missing_golden_says_how_to_generate(tmp_path):
    result = conformance.golden_losses("std", golden_dir=tmp_path)
    assert not result.passed and "--update-golden std" in result.detail


def test_report_lists_every_check():
    results = [conformance.CheckResult(c, "std", c != "determinism", "detail") for c in conformance.CHECKS]
    report = conformance.format_report(results)
    assert "FAIL  determinism" in report and f"{len(results) - 1}/{len(results)} checks passed" in report

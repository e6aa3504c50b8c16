"""Method conformance: the checks every registered method must pass, runnable on any installed method.

    python -m regbench.harness.testing.conformance NAME [--param k=v ...]     run every check, print a report
    python -m regbench.harness.testing.conformance --update-golden NAME [...]  (re)write golden losses (``all``: all)

Each check trains the method through the real loop (``harness.run.train.train``) on the tiny random BERT
(``tiny-random-bert``) with small synthetic in-memory tasks, one per task type (classification, regression, token
classification), so it needs no data files and works for third-party methods too. The checks:

1. ``finite_losses``: every loss term of every step is finite on every task type;
2. ``gradient_flow``: gradients that reach the optimiser step land only on parameters an optimiser owns (the main
   one, or one the method holds as an attribute), parameters that change are owned by one, and the method's
   ``frozen_modules()`` get no gradient, stay in eval mode and do not change;
3. ``determinism``: the same seed gives bit-identical step losses, epoch losses, metrics and final weights (CPU);
4. ``plain_architecture``: after ``finalize`` the model has the parameter count, state-dict keys, module types and
   (no) hooks of a freshly built task model;
5. ``record_roundtrip``: the run's record (``harness.api.build_record``) validates, is written and reads back equal;
6. ``golden_losses``: the first per-step loss terms equal the stored ones (``tests/conformance/golden/<name>.json``,
   rtol 1e-5): a change in a method's numbers must be deliberate, and then its golden file is regenerated.

The runs of one method are shared between checks through a :class:`Probe` (each costs well under a second).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from regbench.benchmarks.noise import NoiseSpec, apply_noise

from .. import api
from ..core.registry import Registry
from ..io import records
from ..run.method import METHODS, get_method
from ..run.model import TINY_MODEL, TaskModel, load_pretrained
from ..run.train import TrainResult
from .probe import SEED, SIZES, TASK_TYPES, TRAIN_CONFIG, Probe, ProbeRun

GOLDEN_STEPS = 4
RTOL, ATOL = 1e-5, 1e-8
COMMAND = "python -m regbench.harness.testing.conformance"
GOLDEN_DIR = Path(__file__).resolve().parents[2] / "tests" / "conformance" / "golden"


@dataclass
class CheckResult:
    check: str
    method: str
    passed: bool
    detail: str
    seconds: float = 0.0


# ---- checks ---------------------------------------------------------------------------------------------------
def _checked(fn: Callable[[Probe], str]) -> Callable[..., CheckResult]:
    """A check raises AssertionError (or anything) to fail; its return value is the pass detail."""

    @functools.wraps(fn)
    def wrapper(name: str, params: Mapping[str, Any] | None = None, probe: Probe | None = None,
                **kwargs: Any) -> CheckResult:
        probe = probe or Probe(name, params)
        start = time.perf_counter()
        try:
            return CheckResult(fn.__name__, name, True, fn(probe, **kwargs), time.perf_counter() - start)
        except Exception as err:  # a failing method must produce a report, not a crash
            text = str(err).strip() or type(err).__name__
            detail = text if isinstance(err, AssertionError) else f"{type(err).__name__}: {text}"
            return CheckResult(fn.__name__, name, False, detail, time.perf_counter() - start)

    return wrapper


@_checked
def finite_losses(probe: Probe) -> str:
    terms: set[str] = set()
    steps = 0
    for task_type in TASK_TYPES:
        run = probe.run(task_type)
        assert run.step_terms, f"{task_type}: no training step recorded"
        for i, step in enumerate(run.step_terms):
            bad = {k: v for k, v in step.items() if not math.isfinite(v)}
            assert not bad, f"{task_type}: non-finite loss terms at step {i + 1}: {bad}"
        assert run.result.status != "diverged", f"{task_type}: {run.result.error}"
        steps += len(run.step_terms)
        terms.update(run.step_terms[0])
    return f"{len(TASK_TYPES)} task types, {steps} steps, terms {', '.join(sorted(terms))}"


@_checked
def gradient_flow(probe: Probe) -> str:
    frozen = 0
    for task_type in TASK_TYPES:
        run = probe.run(task_type)
        assert not run.problems, f"{task_type}: " + "; ".join(run.problems[:3])
        frozen = max(frozen, run.frozen_checked)
    return f"only optimiser-owned parameters get gradients and change; {frozen} frozen module(s) untouched"


@_checked
def determinism(probe: Probe) -> str:
    first, second = probe.run("classification"), probe.run("classification", fresh=True)
    assert first.step_terms == second.step_terms, "step losses differ between two runs with the same seed"
    assert _canonical(first.result.epoch_losses) == _canonical(second.result.epoch_losses), "epoch losses differ"
    assert _canonical(first.result.dev_curve) == _canonical(second.result.dev_curve), "dev curves differ"
    assert _canonical(_metrics(first.result)) == _canonical(_metrics(second.result)), "test metrics differ"
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "final weights differ"
    return f"two seeded runs bit-identical ({len(first.step_terms)} steps, {len(a)} tensors)"


@_checked
def plain_architecture(probe: Probe) -> str:
    for task_type in TASK_TYPES:
        run = probe.run(task_type)
        plain = TaskModel(load_pretrained(TINY_MODEL), run.task.type, run.task.num_labels)
        got, want = run.model, plain
        assert _count(got) == _count(want), f"{task_type}: {_count(got)} parameters, plain model has {_count(want)}"
        assert list(got.state_dict()) == list(want.state_dict()), (
            f"{task_type}: state-dict keys differ: {sorted(set(got.state_dict()) ^ set(want.state_dict()))[:3]}")
        extra = {type(m) for m in got.modules()} - {type(m) for m in want.modules()}
        assert not extra, f"{task_type}: module types a plain model lacks: {sorted(t.__name__ for t in extra)}"
        hooks = [n for n, m in got.named_modules() if _hooks(m) > 0]
        assert not hooks, f"{task_type}: hooks left on modules {hooks[:3]}"
    return "after finalize: plain parameter count, state-dict keys and module types, no hooks"


@_checked
def record_roundtrip(probe: Probe) -> str:
    run = probe.run("classification")
    record = build_probe_record(probe.name, probe.params, run)
    with tempfile.TemporaryDirectory() as tmp:
        path = records.write_record(Path(tmp) / "record.json", record)
        back = records.read_record(path)
    records.validate_record(back)
    assert records._dumps(back) == records._dumps(record), "the record read back differs from the one written"
    return f"record of {len(records._dumps(record))} bytes validates and round-trips"


@_checked
def golden_losses(probe: Probe, golden_dir: Path | None = None) -> str:
    path = golden_path(probe.name, golden_dir)
    how = f"generate it with: {COMMAND} --update-golden {probe.name}"
    assert path.exists(), f"no golden file {path}; {how}"
    golden = json.loads(path.read_text())
    assert golden["settings"] == _settings(), f"{path} was made with other conformance settings; {how}"
    assert golden["params"] == _params(probe), f"{path} was made with params {golden['params']}; {how}"
    for task_type, want in golden["steps"].items():
        got = probe.run(task_type).step_terms[:GOLDEN_STEPS]
        assert len(got) == len(want), f"{task_type}: {len(got)} steps, golden has {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.keys() == w.keys(), f"{task_type} step {i + 1}: terms {sorted(g)}, golden {sorted(w)}"
            for k in w:
                assert math.isclose(g[k], w[k], rel_tol=RTOL, abs_tol=ATOL), (
                    f"{task_type} step {i + 1} term {k!r}: {g[k]!r} vs golden {w[k]!r} (rtol {RTOL}); if the change "
                    f"is intended, regenerate: {COMMAND} --update-golden {probe.name}")
    return f"first {GOLDEN_STEPS} steps of {len(golden['steps'])} task types match {path.name} (rtol {RTOL})"


CHECKS: dict[str, Callable[..., CheckResult]] = {f.__name__: f for f in (
    finite_losses, gradient_flow, determinism, plain_architecture, record_roundtrip, golden_losses)}


# ---- helpers --------------------------------------------------------------------------------------------------
def build_probe_record(name: str, params: Mapping[str, Any], run: ProbeRun) -> dict[str, Any]:
    """The record ``harness.api.run`` would write for this run (the synthetic data stands in for a task's files)."""
    config = api.RunConfig(task=run.task.name, method=name, method_params=dict(params), model=TINY_MODEL,
                           train_size=SIZES["train"], seed=SEED, train=TRAIN_CONFIG, track=False, write_record=False)
    pretrained = load_pretrained(TINY_MODEL)
    run_config = api.describe(config, run.task, run.method, pretrained.checksum)
    _, noise = apply_noise(run.task, run.data["train"], NoiseSpec(0.0, "symmetric"), 0)
    data_info = {"size": run_config["data"]["train_size"], "files": [], "noise_train": noise}
    seeds = {"data": SEED, "noise": SEED, "init": SEED}
    return api.build_record(config, run.task, name, run_config, "probe", "probe", seeds, data_info, run.result, 0.0,
                            pretrained.checksum, None, "conformance")


def golden_path(name: str, golden_dir: Path | None = None) -> Path:
    # The registry's spelling ("LP-FT" → lp_ft), so a file written for any spelling is the one the suite reads.
    return Path(golden_dir or GOLDEN_DIR) / f"{Registry._normalise(name).replace('+', 'p')}.json"


def update_golden(name: str, params: Mapping[str, Any] | None = None, golden_dir: Path | None = None) -> Path:
    """Record the first ``GOLDEN_STEPS`` per-step loss terms of every task type as the method's golden file."""
    probe = Probe(name, params)
    golden = {"method": name, "params": _params(probe), "settings": _settings(), "torch": torch.__version__,
              "steps": {t: probe.run(t).step_terms[:GOLDEN_STEPS] for t in TASK_TYPES}}
    path = golden_path(name, golden_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    return path


def run_all(name: str, params: Mapping[str, Any] | None = None, golden_dir: Path | None = None) -> list[CheckResult]:
    probe = Probe(name, params)
    return [check(name, probe=probe, **({"golden_dir": golden_dir} if check is golden_losses else {}))
            for check in CHECKS.values()]


def format_report(results: list[CheckResult]) -> str:
    lines = [f"conformance of method {results[0].method!r}" if results else "no checks run"]
    for r in results:
        lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.check:<19} {r.detail} ({r.seconds:.1f} s)")
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} checks passed")
    return "\n".join(lines)


def _params(probe: Probe) -> dict[str, Any]:
    return json.loads(json.dumps(get_method(probe.name, probe.params).config.to_dict()))


def _settings() -> dict[str, Any]:
    """What the golden numbers depend on besides the method (a change here invalidates every golden file)."""
    return {"seed": SEED, "sizes": SIZES, "model": TINY_MODEL, "golden_steps": GOLDEN_STEPS,
            "train": json.loads(json.dumps(TRAIN_CONFIG.__dict__))}


def _metrics(result: TrainResult) -> Any:
    return result.test.metrics if result.test else None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)  # NaN compares equal to NaN as text


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(getattr(module, a)) for a in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                                                 "_backward_pre_hooks", "_state_dict_hooks",
                                                 "_load_state_dict_pre_hooks"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="methods to check (default: every registered method)")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="a method hyperparameter")
    parser.add_argument("--update-golden", action="store_true", help="write golden files instead of checking")
    parser.add_argument("--golden-dir", type=Path, default=None, help=f"default: {GOLDEN_DIR}")
    args = parser.parse_args(argv)
    params = dict(p.split("=", 1) for p in args.param)
    names = [n for n in args.names if n != "all"] or [n for n in METHODS.names() if not n.startswith("_")]
    failed = False
    for name in names:
        if args.update_golden:
            print(f"wrote {update_golden(name, params, args.golden_dir)}")
            continue
        results = run_all(name, params, args.golden_dir)
        print(format_report(results))
        failed |= not all(r.passed for r in results)
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())

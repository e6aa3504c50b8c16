"""Method conformance: the checks every registered method must pass, runnable on any installed method.

    python -m regbench.harness.conformance NAME [--param k=v ...]        run every check, print a report
    python -m regbench.harness.conformance --update-golden NAME [...]     (re)write golden losses (``all`` = every method)

Each check trains the method through the real loop (``harness.train.train``) on the tiny random BERT
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from regbench.benchmarks.noise import NoiseSpec, apply_noise
from regbench.benchmarks.taskspec import TaskSpec

from . import api, records
from .method import METHODS, Method, get_method
from .model import TINY_MODEL, TaskModel, load_pretrained
from .train import TrainConfig, TrainResult, train

SEED = 7
TASK_TYPES = ("classification", "regression", "token_classification")
SIZES = {"train": 16, "dev": 8, "test": 8}
TRAIN_CONFIG = TrainConfig(epochs=2, batch_size=8, lr=1e-3, eval_batch_size=8, device="cpu", precision="fp32")
GOLDEN_STEPS = 4
RTOL, ATOL = 1e-5, 1e-8
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "conformance" / "golden"
_LABELS = ("O", "B-X", "I-X")


@dataclass
class CheckResult:
    check: str
    method: str
    passed: bool
    detail: str
    seconds: float = 0.0


# ---- synthetic tasks ------------------------------------------------------------------------------------------
def synthetic_task(task_type: str) -> TaskSpec:
    """A minimal in-memory TaskSpec of the given type (no data source is ever read)."""
    metrics, primary = {"classification": (("accuracy",), ("accuracy",)),
                        "regression": (("pearsonr",), ("pearson",)),
                        "token_classification": (("seqeval",), ("f1",))}[task_type]
    return TaskSpec(name=f"conformance_{task_type}", version=1, type=task_type, source={"mirror": "none"},
                    splits={"train": "train", "test": "test"}, label_column="label", metrics=metrics, primary=primary,
                    text_columns=("text",), tokens_column="tokens" if task_type == "token_classification" else None,
                    num_labels=3 if task_type != "regression" else 1,
                    label_names=_LABELS if task_type == "token_classification" else ())


def synthetic_data(task_type: str) -> dict[str, list[dict[str, Any]]]:
    """Random token sequences of varied length (so padding and length grouping are exercised), fixed labels."""
    generator = torch.Generator().manual_seed(0)
    features, idx = [], 0
    data: dict[str, list[dict[str, Any]]] = {}
    for split, size in SIZES.items():
        features = []
        for _ in range(size):
            length = int(torch.randint(3, 15, (1,), generator=generator))
            words = torch.randint(1000, 8000, (length,), generator=generator).tolist()
            ids = [101, *words, 102]
            if task_type == "token_classification":
                tags = torch.randint(0, len(_LABELS), (length,), generator=generator).tolist()
                label: Any = [-100, *tags, -100]
            elif task_type == "regression":
                label = float(torch.rand((), generator=generator)) * 5
            else:
                label = idx % 3
            features.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "attention_mask": [1] * len(ids),
                             "idx": idx, "labels": label})
            idx += 1
        data[split] = features
    return data


# ---- instrumented runs ----------------------------------------------------------------------------------------
@dataclass
class ProbeRun:
    task: TaskSpec
    result: TrainResult
    model: TaskModel  # after finalize
    method: Method
    step_terms: list[dict[str, float]]  # "task" plus the method's terms, per optimiser step
    problems: list[str]  # gradient / frozen-module violations seen during training
    frozen_checked: int = 0
    data: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Instrument:
    """Wraps a method instance's hooks to observe a run without changing it (no extra random draws)."""

    def __init__(self, method: Method) -> None:
        self.method, self.ctx = method, None
        self.steps: list[dict[str, float]] = []
        self.problems: list[str] = []
        self.initial: dict[str, torch.Tensor] = {}
        self.frozen: list[tuple[torch.nn.Module, dict[str, torch.Tensor]]] = []
        for hook in ("prepare", "loss", "after_backward", "finalize"):
            setattr(method, hook, functools.partial(getattr(self, f"_{hook}"), getattr(method, hook)))

    def _prepare(self, original: Callable, ctx: Any) -> None:
        original(ctx)
        self.ctx = ctx
        self.initial = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
        self.frozen = [(m, {k: v.detach().clone() for k, v in m.state_dict().items()})
                       for m in self.method.frozen_modules()]

    def _loss(self, original: Callable, model: TaskModel, batch: dict, outputs: Any) -> dict[str, torch.Tensor]:
        terms = original(model, batch, outputs)
        with torch.no_grad():  # the loop's own task term, recomputed: same op on the same tensors, same value
            task = model.task_loss(outputs.logits, batch["labels"])
        self.steps.append({"task": float(task), **{k: float(v.detach()) for k, v in terms.items()}})
        return terms

    def _after_backward(self, original: Callable, model: TaskModel) -> None:
        original(model)
        owned = _owned(self.method, self.ctx)
        for name, p in model.named_parameters():
            if p.grad is not None and id(p) not in owned:
                self._problem(f"parameter {name} gets a gradient but no optimiser owns it")
        self._check_frozen(changed_too=False)

    def _finalize(self, original: Callable, model: TaskModel) -> None:
        owned = _owned(self.method, self.ctx)
        for name, p in model.named_parameters():
            if name in self.initial and id(p) not in owned and not torch.equal(p.detach(), self.initial[name]):
                self._problem(f"parameter {name} changed but no optimiser owns it")
        self._check_frozen(changed_too=True)
        original(model)

    def _check_frozen(self, changed_too: bool) -> None:
        for i, (module, state) in enumerate(self.frozen):
            if module.training:
                self._problem(f"frozen module {i} ({type(module).__name__}) is in train mode")
            for name, p in module.named_parameters():
                if p.grad is not None:
                    self._problem(f"frozen module {i} parameter {name} has a gradient")
            if changed_too and any(not torch.equal(v, state[k]) for k, v in module.state_dict().items()):
                self._problem(f"frozen module {i} ({type(module).__name__}) changed during training")

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


def _owned(method: Method, ctx: Any) -> set[int]:
    """ids of the parameters of the main optimiser and of any optimiser the method holds as an attribute."""
    optimizers = [ctx.optimizer] if ctx is not None and ctx.optimizer is not None else []
    for value in vars(method).values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        optimizers += [v for v in items if isinstance(v, torch.optim.Optimizer)]
    return {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}


class Probe:
    """Instrumented training runs of one method (built from its defaults or ``params``), memoised per task type."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None) -> None:
        self.name, self.params = name, dict(params or {})
        self._runs: dict[str, ProbeRun] = {}

    def run(self, task_type: str = "classification", fresh: bool = False) -> ProbeRun:
        if fresh or task_type not in self._runs:
            run = self._train(task_type)
            if fresh:
                return run
            self._runs[task_type] = run
        return self._runs[task_type]

    def _train(self, task_type: str) -> ProbeRun:
        pretrained = load_pretrained(TINY_MODEL)
        task, data = synthetic_task(task_type), synthetic_data(task_type)
        method = get_method(self.name, self.params)
        instrument = _Instrument(method)
        torch.manual_seed(SEED)  # as harness.api.run: dropout and anything the method draws from the global stream
        model = TaskModel(pretrained, task.type, task.num_labels, head_seed=SEED)
        result = train(model, method, task, data, TRAIN_CONFIG, SEED, pretrained.tokenizer.pad_token_id)
        return ProbeRun(task, result, model, method, instrument.steps, instrument.problems, len(instrument.frozen),
                        data)


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
    how = f"generate it with: python -m regbench.harness.conformance --update-golden {probe.name}"
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
                    f"is intended, regenerate: python -m regbench.harness.conformance --update-golden {probe.name}")
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
    return Path(golden_dir or GOLDEN_DIR) / f"{name.replace('+', 'p')}.json"


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
                                                 "_backward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regbench.harness.conformance", description=__doc__.splitlines()[0])
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

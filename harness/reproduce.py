"""``regbench reproduce`` and ``regbench compare``: do the published numbers come back?

    regbench reproduce results/quick/records/trec/std/<key>-<time>.json   # one record is enough
    regbench reproduce --profile quick --sample 5                          # a fixed random subset of a grid
    regbench compare results/quick results/runs/quick                      # two grids' final runs, by run key

``reproduce`` rebuilds each record's run from what the record holds (its resolved configuration: task and version,
method and every parameter, model and checksum, sizes, noise, training settings, seed), checks first that this
machine can make the same run (suite version, task version, data-file hashes, model checksum, package versions and
lock file), re-runs it into a fresh directory and compares every dev and test metric. On the CPU with the same
packages the run is deterministic, so the default tolerance is 0: bit-identical or "differs" with the Δ of each
metric. ``--allow-other-env`` runs despite other package versions (another machine, a GPU): then pass a tolerance.

Verdicts: ``reproduced`` (every metric within the tolerance), ``differs`` (Δ per metric), ``not run`` (one line
why). The report is printed and written to ``<out>/reproduce.md`` and ``reproduce.json``; the exit status is 0 only
when every record reproduced.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from .core.errors import ConfigError, RegbenchError
from .core.options import add_options
from .run.config import RunConfig

METRIC_SECTIONS = ("test", "dev")
REPORTED_PHASES = ("final", "single")


@dataclass
class Outcome:
    """What became of one record."""

    path: str
    run_id: str
    verdict: str  # reproduced | differs | not run
    reason: str = ""
    deltas: dict[str, float] = field(default_factory=dict)  # "test/accuracy" → new − old (differs only)


# ---- collecting ---------------------------------------------------------------------------------------------------
def collect(paths: list[str], profile: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Records from files and directories (and ``results/<profile>/records``), reported phases only, by run id."""
    from .io.records import iter_records, read_record

    sources = [Path(p) for p in paths] + ([Path("results") / profile / "records"] if profile else [])
    if not sources:
        raise ConfigError("name records to reproduce: record files, directories, or --profile NAME")
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for source in sources:
        if not source.exists():
            raise ConfigError(f"{source} does not exist (give record files, a records directory or --profile)")
        pairs = iter_records(source) if source.is_dir() else [(source, read_record(source))]
        for path, record in pairs:
            info = record["run_info"]
            if info.get("phase") in REPORTED_PHASES:
                found[info["run_id"]] = (path, record)  # several records of one run: the last listed wins
    if not found:
        raise ConfigError(f"no final-run records under {', '.join(map(str, sources))}")
    return [found[key] for key in sorted(found)]


def sample(records: list[Any], n: int | None, seed: int = 0) -> list[Any]:
    """A fixed random subset of ``n`` records (the same every time for the same records), in run-id order."""
    if n is None or n >= len(records):
        return records
    if n < 1:
        raise ConfigError(f"--sample must be ≥ 1, got {n}")
    chosen = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in chosen]


# ---- from a record to a run ---------------------------------------------------------------------------------------
def config_from_record(record: dict[str, Any], out_dir: str, data_dir: str | None = None) -> RunConfig:
    """The ``RunConfig`` that made this record (its run key is the record's run id when nothing else changed)."""
    from .io.record_model import upgrade
    from .run.train import TrainConfig

    described = record["run_info"]["config"]
    data, model, noise = described["data"], described["model"], described["data"].get("noise") or {}
    train = TrainConfig(**{k: v for k, v in described["train"].items() if k in TrainConfig.__dataclass_fields__})
    metrics = upgrade(record).get("metrics") or {}  # a version-1 record kept collapse at the top level
    return RunConfig(
        task=described["task"]["name"], method=described["method"]["name"],
        method_params=dict(described["method"]["params"]), model=model["name"], pooling=model.get("pooling"),
        dropout=model.get("dropout", 0.1), train_size=data["train_size"], dev_size=data.get("dev_size"),
        noise_rate=float(noise.get("rate", 0.0)), noise_type=noise.get("type", "symmetric"),
        max_test_examples=data.get("max_test_examples"), max_length=data["max_length"], seed=described["seed"],
        train=train, data_dir=data_dir, out_dir=out_dir, track=False, profile=record["run_info"].get("profile"),
        ood=metrics.get("ood") is not None, collapse=bool(metrics.get("collapse")))


def preflight(record: dict[str, Any], config: RunConfig, allow_other_env: bool) -> str | None:
    """Why this machine cannot make the record's run (one line), or None."""
    from .api import SUITE_VERSION

    described, meta = record["run_info"]["config"], record["meta_info"]
    made = described.get("suite_version")
    if made != SUITE_VERSION:
        sha = (meta.get("git") or {}).get("sha") or "unknown"
        return (f"made with suite version {made}; this regbench runs suite version {SUITE_VERSION} "
                f"(check out commit {sha} to re-run it)")
    return (_task_difference(described, config) or _model_difference(described, config)
            or _data_difference(meta, config) or (None if allow_other_env else environment_difference(meta)))


def _task_difference(described: dict[str, Any], config: RunConfig) -> str | None:
    from regbench.benchmarks.taskspec import get_task

    try:
        task = get_task(config.task)
    except RegbenchError:
        return f"unknown task {config.task!r} here (add its YAML with --tasks-dir)"
    want = described["task"].get("version")
    if task.version == want:
        return None
    return f"task {task.name} is version {task.version} here, the record's is version {want}"


def _model_difference(described: dict[str, Any], config: RunConfig) -> str | None:
    from .run.model import load_pretrained

    here, want = load_pretrained(config.model).checksum, described["model"].get("checksum")
    return None if here == want else f"model {config.model} checksum {here[:12]} here, the record's is {str(want)[:12]}"


def _data_difference(meta: dict[str, Any], config: RunConfig) -> str | None:
    """The record's data-file hashes (by file name: another machine mounts the mirror elsewhere) against ours."""
    from regbench.benchmarks.taskspec import get_task

    from .api import prepare_pool
    from .io.records import file_sha256
    from .run.model import load_pretrained

    task = get_task(config.task)
    pool, test, _ = prepare_pool(task, config, load_pretrained(config.model).tokenizer)
    here = {Path(s).name: file_sha256(s) for s in {pool.source, test.source} if Path(s).exists()}
    for path, digest in sorted((meta.get("data_files") or {}).items()):
        name = Path(path).name
        if here.get(name, digest) != digest:
            return f"data file {name} has sha256 {here[name][:12]} here, the record's is {digest[:12]}"
    return None


def environment_difference(meta: dict[str, Any]) -> str | None:
    """Packages (and the lock file) that differ from the record's, named; None when they match."""
    from .core.version import package_version
    from .io.records import PACKAGES, lock_state

    wanted = meta.get("packages") or {}
    differ = [f"{name} {package_version(name)} here vs {wanted[name]}" for name in PACKAGES
              if name in wanted and package_version(name) != wanted[name]]
    lock_then, lock_now = (meta.get("environment") or {}).get("lock_sha256"), lock_state()["lock_sha256"]
    if lock_then and lock_now and lock_then != lock_now:
        differ.append(f"lock file sha256 {lock_now[:12]} here vs {lock_then[:12]}")
    if not differ:
        return None
    return ("package versions differ: " + "; ".join(differ)
            + " (install the lock file, or pass --allow-other-env with a --tolerance)")


# ---- comparing ----------------------------------------------------------------------------------------------------
def metric_deltas(old: dict[str, Any], new: dict[str, Any]) -> dict[str, float]:
    """new − old for every dev and test metric either record has (NaN where one lacks it or scored NaN)."""
    deltas = {}
    for section in METRIC_SECTIONS:
        before, after = (old.get("metrics") or {}).get(section) or {}, (new.get("metrics") or {}).get(section) or {}
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
            deltas[f"{section}/{name}"] = 0.0 if same else (b - a if _number(a) and _number(b) else math.nan)
    return deltas


def _number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def judge(path: str, old: dict[str, Any], new: dict[str, Any], tolerance: float) -> Outcome:
    """``reproduced`` when every metric is within ``tolerance`` (0: bit-identical) and the status agrees."""
    run_id = old["run_info"]["run_id"]
    deltas = metric_deltas(old, new)
    off = {k: d for k, d in deltas.items() if not (abs(d) <= tolerance)}  # NaN is never within
    if old["run_info"]["status"] != new["run_info"]["status"]:
        return Outcome(path, run_id, "differs", f"status {old['run_info']['status']} → {new['run_info']['status']}",
                       off)
    return Outcome(path, run_id, "differs" if off else "reproduced", deltas=off)


# ---- running ------------------------------------------------------------------------------------------------------
def reproduce(pairs: list[tuple[Path, dict[str, Any]]], out_dir: str | Path, tolerance: float = 0.0,
              allow_other_env: bool = False, data_dir: str | None = None) -> list[Outcome]:
    """Re-run each record into ``out_dir`` (records only, no MLflow) and judge it against the original."""
    from .api import run, run_key

    outcomes = []
    for path, record in pairs:
        run_id = record["run_info"]["run_id"]
        try:
            config = config_from_record(record, str(out_dir), data_dir)
            reason = preflight(record, config, allow_other_env)
            if reason is None and run_key(config) != run_id:
                reason = f"the rebuilt configuration has run key {run_key(config)}, not {run_id}"
        except (RegbenchError, KeyError, TypeError, ValueError) as err:
            reason = f"cannot rebuild its configuration: {type(err).__name__}: {err}"
        if reason is not None:
            outcomes.append(Outcome(str(path), run_id, "not run", reason))
            continue
        outcomes.append(judge(str(path), record, run(config), tolerance))
    return outcomes


def compare_dirs(reference: str | Path, candidate: str | Path, tolerance: float = 0.0) -> list[Outcome]:
    """Every final run of ``reference`` against the candidate's record with the same run key (newest wins)."""
    ref, cand = ({r["run_info"]["run_id"]: (p, r) for p, r in collect([str(_records(d))])}
                 for d in (reference, candidate))
    outcomes = []
    for key, (path, old) in sorted(ref.items()):
        if key not in cand:
            outcomes.append(Outcome(str(path), key, "not run", f"no record with run key {key} in {candidate}"))
            continue
        outcomes.append(judge(str(path), old, cand[key][1], tolerance))
    return outcomes


def _records(directory: str | Path) -> Path:
    path = Path(directory)
    return path / "records" if (path / "records").is_dir() else path


def summary_line(outcomes: list[Outcome], tolerance: float) -> str:
    done = sum(o.verdict == "reproduced" for o in outcomes)
    how = "bit-for-bit" if tolerance == 0 else f"within {tolerance:g}"
    line = f"{done} of {len(outcomes)} final runs reproduced {how}"
    differs, skipped = (sum(o.verdict == v for o in outcomes) for v in ("differs", "not run"))
    return line + (f"; {differs} differ, {skipped} not run" if differs or skipped else "")


def render(outcomes: list[Outcome], tolerance: float) -> str:
    lines = [f"# regbench reproduce\n\n{summary_line(outcomes, tolerance)}\n", "| record | verdict | detail |",
             "|---|---|---|"]
    for o in outcomes:
        detail = o.reason or ", ".join(f"{k} Δ {d:+.6g}" for k, d in sorted(o.deltas.items())) or "—"
        lines.append(f"| {Path(o.path).name} | {o.verdict} | {detail} |")
    return "\n".join(lines) + "\n"


def write_report(outcomes: list[Outcome], out_dir: str | Path, tolerance: float) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reproduce.md").write_text(render(outcomes, tolerance))
    payload = {"tolerance": tolerance, "summary": summary_line(outcomes, tolerance),
               "outcomes": [o.__dict__ for o in outcomes]}
    (out / "reproduce.json").write_text(json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
    return out / "reproduce.md"


# ---- command line -------------------------------------------------------------------------------------------------
def add_parsers(sub: Any) -> None:
    """Register the ``reproduce`` and ``compare`` sub-commands."""
    rep = sub.add_parser("reproduce", help="re-run records from what they hold and check their numbers come back")
    rep.add_argument("records", nargs="*", help="record files or directories of records")
    rep.add_argument("--profile", help="the records of results/<profile>/records")
    rep.add_argument("--out", default="results/runs/reproduce", help="fresh output directory for the re-runs")
    rep.add_argument("--sample", type=int, help="re-run a fixed random subset of this many records")
    rep.add_argument("--allow-other-env", action="store_true",
                     help="run even where package versions or the lock file differ from the record's")
    add_options(rep, RunConfig, ["data_dir"])  # the same option as `regbench run`'s
    cmp = sub.add_parser("compare", help="compare the final runs of two result directories, run key by run key")
    cmp.add_argument("reference", help="results directory (or its records/) holding the published runs")
    cmp.add_argument("candidate", help="results directory (or its records/) of the runs to check")
    for p in (rep, cmp):
        p.add_argument("--tolerance", type=float, default=0.0,
                       help="largest |Δ| per metric that still counts as reproduced (default 0: bit-identical)")
    rep.set_defaults(handler=_cmd_reproduce)
    cmp.set_defaults(handler=_cmd_compare)


def _check_tolerance(value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ConfigError(f"--tolerance must be a number ≥ 0, got {value}")


def _cmd_reproduce(args: argparse.Namespace) -> int:
    _check_tolerance(args.tolerance)
    out = Path(args.out)
    if out.exists() and any((out / "records").glob("**/*.json*")):
        raise ConfigError(f"{out} already holds re-run records: give a fresh --out (re-runs are compared one by one)")
    pairs = sample(collect(args.records, args.profile), args.sample)
    outcomes = reproduce(pairs, out, args.tolerance, args.allow_other_env, args.data_dir)
    report = write_report(outcomes, out, args.tolerance)
    print(render(outcomes, args.tolerance), end="")
    print(f"report: {report}")
    return 0 if all(o.verdict == "reproduced" for o in outcomes) else 1


def _cmd_compare(args: argparse.Namespace) -> int:
    _check_tolerance(args.tolerance)
    outcomes = compare_dirs(args.reference, args.candidate, args.tolerance)
    for o in outcomes:
        if o.verdict != "reproduced":
            detail = o.reason or ", ".join(f"{k} Δ {d:+.6g}" for k, d in sorted(o.deltas.items()))
            print(f"{o.verdict}: {Path(o.path).name}: {detail}")
    print(summary_line(outcomes, args.tolerance))
    return 0 if all(o.verdict == "reproduced" for o in outcomes) else 1

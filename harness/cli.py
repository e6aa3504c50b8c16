"""``regbench`` command line: a thin layer over ``regbench.harness.api``.

    regbench run --task sst2 --method std --train-size 64 --epochs 3 --seed 1
    regbench ls tasks | methods | profiles
    regbench validate [TASK or path/to/task.yaml ...]

Bad input and known faults (a full disk, a corrupt data file, an unreachable tracking server, SIGTERM) print one
line (``regbench: error: …``, with how to resume where something was running) and exit with status 2; a bug prints
one line pointing at ``--debug`` and exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .core.errors import ConfigError, Fault, Interrupted, RegbenchError, check_dir, describe, describe_fault
from .core.options import add_options, values
from .core.version import __version__
from .grid.calibrate import parse_speed
from .run.config import RunConfig, parse_method_params


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure ends as one ``regbench: error:`` line on stderr: status 2 for bad input and
    known faults (with how to resume), 1 for a bug (``--debug`` shows its traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    if debug:
        argv.remove("--debug")
        os.environ["REGBENCH_DEBUG"] = "1"  # grid workers are separate processes: they show tracebacks too
    parser = build_parser()
    args = parser.parse_args(argv)
    restore = _on_sigterm()
    try:
        if getattr(args, "tasks_dir", None):
            from regbench.benchmarks.taskspec import add_tasks_dir

            for directory in args.tasks_dir:
                add_tasks_dir(directory)
        return int(args.handler(args) or 0)
    except (Exception, KeyboardInterrupt, Fault) as err:
        if debug:
            traceback.print_exc()
        known = isinstance(err, RegbenchError | KeyboardInterrupt | Fault) or describe_fault(err) is not None
        print(f"regbench: error: {describe(err)}", file=sys.stderr)
        return 2 if known else 1
    finally:
        restore()


def _on_sigterm() -> Any:
    """Turn SIGTERM (a scheduler stopping the job, ``kill``) into :class:`Interrupted`, so it unwinds like Ctrl-C:
    the loopback server and workers are stopped and the user gets one line. Returns what puts the old one back
    (``main`` is also called in-process, by tests and scripts)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def add_tasks_dir(parser: argparse.ArgumentParser) -> None:
    """``--tasks-dir`` (repeatable), for every command that reads tasks; ``main`` loads them before the command."""
    parser.add_argument("--tasks-dir", action="append", help="also load task YAMLs from this directory (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regbench", description="Benchmark regularizers for fine-tuning pretrained language models."
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (any position)")
    parser.add_argument("--version", action="version", version=f"regbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub.add_parser("run", help="train and evaluate one task/method/seed; write a record and an MLflow run"))
    ls = sub.add_parser("ls", help="list tasks, methods or profiles")
    ls.add_argument("what", choices=["tasks", "methods", "profiles"])
    ls.add_argument("-v", "--verbose", action="store_true", help="show details (method hyperparameters, task notes)")
    add_tasks_dir(ls)
    ls.set_defaults(handler=_cmd_ls)
    val = sub.add_parser("validate", help="check task YAMLs (and their data) without training")
    val.add_argument("tasks", nargs="*", help="task names or YAML paths (default: every registered task)")
    val.add_argument("--no-data", action="store_true", help="check the YAML only, not the data files")
    add_options(val, RunConfig, ["data_dir"])
    add_tasks_dir(val)
    val.set_defaults(handler=_cmd_validate)
    _add_grid(sub)
    _add_check_method(sub)
    from .leaderboard.command import add_parser as _add_leaderboard  # heavy imports happen when it runs

    _add_leaderboard(sub)
    from .reproduce import add_parsers as _add_reproduce  # its heavy imports happen when it runs

    _add_reproduce(sub)
    return parser


def _add_grid(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print a profile's cells, run counts and estimated cost (runs nothing)")
    bench = sub.add_parser(
        "bench", help="run (or resume) a profile's grid: tune every cell, re-run the best over seeds"
    )
    status = sub.add_parser("status", help="how far a profile's grid has got, per cell (reads; runs nothing)")
    for p in (plan, bench, status):
        p.add_argument("--profile", required=True, help="profile name (see 'regbench ls profiles') or a YAML path")
        add_options(p, RunConfig, ["data_dir"])
        add_tasks_dir(p)
    plan.add_argument("--speed", type=parse_speed, default=1.0,
                      help="hardware speed-up over the reference 2-core CPU, or 'auto' (measure this host, ~10 s)")
    plan.add_argument("--csv", help="also write the plan table to this CSV file")
    plan.set_defaults(handler=_cmd_plan)
    bench.add_argument("--out", help="output directory (default results/<profile>)")
    bench.add_argument("--overwrite", default="only-missing", choices=["never", "only-missing", "always"],
                       help="only-missing: resume (default); always: re-run final runs; never: refuse if results exist")
    bench.add_argument("--workers", type=int, default=1, help="worker processes sharing the studies (default 1)")
    bench.add_argument("--tracking-uri", help="MLflow URI (default: SQLite in the output dir; a loopback server "
                                              "when --workers > 1)")
    bench.add_argument("--no-track", action="store_true", help="records only, no MLflow runs")
    bench.add_argument("--storage", help="Optuna storage: a database URL for workers on several machines "
                                         "(postgresql://user@host/db) or a journal file "
                                         "(default: $REGBENCH_OPTUNA_STORAGE, else <out>/optuna.journal)")
    bench.set_defaults(handler=_cmd_bench)
    status.add_argument("--out", help="the grid's output directory (default results/<profile>)")
    status.add_argument("--storage", help="the grid's Optuna storage, as given to bench (default: "
                                          "$REGBENCH_OPTUNA_STORAGE, else <out>/optuna.journal)")
    status.set_defaults(handler=_cmd_status)


def _add_check_method(sub: Any) -> None:
    p = sub.add_parser("check-method", help="run the conformance suite on a registered method (yours too)")
    p.add_argument("name", help="method name (built-in or registered through the regbench.methods entry points)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a method hyperparameter")
    p.add_argument("--golden-dir", help="where the method's golden-loss file lives (default: tests/conformance/golden)")
    p.set_defaults(handler=_cmd_check_method)


def _cmd_check_method(args: argparse.Namespace) -> int:
    from .run.method import METHODS
    from .testing.conformance import format_report, run_all

    method = METHODS.get(args.name)  # unknown names: one line with "did you mean"
    params = parse_method_params(args.param)
    method.from_params(params)  # a bad parameter is one line, not the same failure in every check
    results = run_all(method.name, params, Path(args.golden_dir) if args.golden_dir else None)
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    from .grid.plan import estimate, notes, phase_notes, plan_table, render
    from .grid.profiles import load_profile

    profile = load_profile(args.profile)
    if args.csv:  # before the estimate (minutes on a big profile), not after it
        _check_csv(args.csv)
    if args.speed == "auto":
        from .grid.calibrate import measure_speed

        args.speed = round(measure_speed(profile.run.model, profile.run.train.batch_size), 2)
    estimates = estimate(profile, args.data_dir, args.speed)
    table = plan_table(profile, estimates)
    print(render(profile, table, args.speed, notes(estimates) + phase_notes(profile)))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _check_csv(path: str) -> None:
    if Path(path).is_dir() or not Path(path).parent.is_dir():
        problem = "is a directory" if Path(path).is_dir() else f"is in a missing folder ({Path(path).parent})"
        raise ConfigError(f"--csv {path} {problem}; give a file path in an existing folder (e.g. plan.csv)")


def _cmd_status(args: argparse.Namespace) -> int:
    from .grid.profiles import load_profile
    from .grid.status import render, status_table

    profile = load_profile(args.profile)
    print(render(profile, status_table(profile, args.out, args.storage, args.data_dir)))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .grid.parallel import run_parallel
    from .grid.profiles import load_profile

    profile = load_profile(args.profile)
    summary = run_parallel(profile, args.out, workers=args.workers, overwrite=args.overwrite,
                           tracking_uri=args.tracking_uri, data_dir=args.data_dir, track=not args.no_track,
                           storage=args.storage)
    print(summary)
    return 0


# `regbench run`'s options, in the order --help lists them: fields of RunConfig (train.*: of its TrainConfig), whose
# declarations (harness/run/config.py) give each option its flag, default and help.
RUN_OPTIONS = ("task", "method", "method_params", "model", "pooling", "train_size", "noise_rate", "noise_type",
               "dev_size", "max_test_examples", "max_length", "train.epochs", "train.batch_size", "train.lr",
               "train.weight_decay", "dropout", "seed", "train.device", "train.precision", "data_dir")
RUN_OUTPUT_OPTIONS = ("out_dir", "tracking_uri", "experiment", "track")


def _add_run(p: argparse.ArgumentParser) -> None:
    add_options(p, RunConfig, RUN_OPTIONS, required=["task"])
    add_tasks_dir(p)
    add_options(p, RunConfig, RUN_OUTPUT_OPTIONS)
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .api import TrainConfig, run

    lr = getattr(args, "train.lr")
    if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"--lr must be a positive number, got {lr}")
    check_dir(args.out_dir, "--out")
    if args.tracking_uri and args.track:  # before the model loads: an unanswered URI must not hang a run
        from .io.tracking import check_tracking_uri

        check_tracking_uri(args.tracking_uri)
    options = RUN_OPTIONS + RUN_OUTPUT_OPTIONS
    train = TrainConfig(**values(args, RunConfig, options, prefix="train."))
    record = run(RunConfig(**values(args, RunConfig, options), train=train))
    _print_summary(record)
    return 0


def _print_summary(record: dict[str, Any]) -> None:
    info, train_info = record["run_info"], record["train_info"]
    print(f"{info['task']} / {info['method']} / seed {info['seed']}: status {info['status']}, "
          f"best epoch {train_info['best_epoch']}")
    for split in ("dev", "test"):
        values = record["metrics"].get(split) or {}
        print(f"  {split:4s} " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
    print(f"  record: {record['_path']}")
    if info.get("mlflow_run_id"):
        print(f"  mlflow run: {info['mlflow_run_id']}")


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from regbench.benchmarks.sources import split_sizes
        from regbench.benchmarks.taskspec import all_tasks

        for t in all_tasks():
            extra = f"  {t.description}" if args.verbose else ""
            sizes = " ".join(f"{k}={'?' if n is None else n}" for k, n in split_sizes(t).items())
            print(f"{t.name:14s} v{t.version}  {t.type:21s} {sizes:22s} metrics={','.join(t.metrics)} "
                  f"primary={'+'.join(t.primary)}{extra}")
    elif args.what == "methods" and not args.verbose:
        # Names and summaries read from source: importing the method modules loads torch (see catalogue.py).
        from .catalogue import method_summaries

        for name, summary in method_summaries():
            print(f"{name:14s} {summary}")
    elif args.what == "methods":
        from .run.method import METHODS

        for name, cls in METHODS.items():
            print(f"{name:14s} {cls.summary}")
            for f in dataclasses.fields(cls.config_class):
                print(f"    {f.name} = {f.default!r}: {f.metadata.get('help', '')}")
            for pname, dist in cls.search_space().items():
                print(f"    search {pname}: {dist}")
    else:
        from .catalogue import list_profiles

        for name, summary in list_profiles():
            print(f"{name:10s} {summary}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from regbench.benchmarks.taskspec import all_tasks, get_task

    from .validate import validate_task

    specs = [get_task(name) for name in args.tasks] if args.tasks else list(all_tasks())
    for spec in specs:
        summary = validate_task(spec, data_dir=args.data_dir, check_data=not args.no_data)
        print(f"ok  {spec.name:14s} {summary}")
    return 0


# ---- leaderboard ----------------------------------------------------------------------------------------------------
if __name__ == "__main__":
    sys.exit(main())

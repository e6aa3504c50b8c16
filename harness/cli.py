"""``regbench`` command line: a thin layer over ``regbench.harness.api``.

    regbench run --task sst2 --method std --train-size 64 --epochs 3 --seed 1
    regbench ls tasks | methods | profiles
    regbench validate [TASK or path/to/task.yaml ...]

Bad input prints one line (``regbench: error: …``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, RegbenchError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "tasks_dir", None):
            from regbench.benchmarks.taskspec import add_tasks_dir

            for directory in args.tasks_dir:
                add_tasks_dir(directory)
        return int(args.handler(args) or 0)
    except RegbenchError as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regbench: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="regbench", description="Benchmark regularizers for fine-tuning pretrained language models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub.add_parser("run", help="train and evaluate one task/method/seed; write a record and an MLflow run"))
    ls = sub.add_parser("ls", help="list tasks, methods or profiles")
    ls.add_argument("what", choices=["tasks", "methods", "profiles"])
    ls.add_argument("-v", "--verbose", action="store_true", help="show details (method hyperparameters, task notes)")
    ls.add_argument("--tasks-dir", action="append", help="also load task YAMLs from this directory (repeatable)")
    ls.set_defaults(handler=_cmd_ls)
    val = sub.add_parser("validate", help="check task YAMLs (and their data) without training")
    val.add_argument("tasks", nargs="*", help="task names or YAML paths (default: every registered task)")
    val.add_argument("--no-data", action="store_true", help="check the YAML only, not the data files")
    val.add_argument("--data-dir", help="Parquet mirror directory (default: $REGBENCH_DATA_DIR or ../shared/data)")
    val.add_argument("--tasks-dir", action="append", help="also load task YAMLs from this directory (repeatable)")
    val.set_defaults(handler=_cmd_validate)
    _add_grid(sub)
    _add_check_method(sub)
    _add_leaderboard(sub)
    return parser


def _add_grid(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print a profile's cells, run counts and estimated cost (runs nothing)")
    bench = sub.add_parser("bench", help="run (or resume) a profile's grid: tune every cell, re-run the best over seeds")
    status = sub.add_parser("status", help="how far a profile's grid has got, per cell (reads; runs nothing)")
    for p in (plan, bench, status):
        p.add_argument("--profile", required=True, help="profile name (see 'regbench ls profiles') or a YAML path")
        p.add_argument("--data-dir", help="Parquet mirror directory (default: $REGBENCH_DATA_DIR or ../shared/data)")
        p.add_argument("--tasks-dir", action="append", help="also load task YAMLs from this directory (repeatable)")
    plan.add_argument("--speed", type=float, default=1.0, help="hardware speed-up over the reference 2-core CPU")
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
                                         "(postgresql://user@host/db) or a journal file (default: $REGBENCH_OPTUNA_STORAGE, "
                                         "else <out>/optuna.journal)")
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
    from pathlib import Path

    from .conformance import format_report, run_all
    from .method import METHODS

    name = METHODS.get(args.name).name  # unknown names: one line with "did you mean"
    results = run_all(name, _parse_params(args.param), Path(args.golden_dir) if args.golden_dir else None)
    print(format_report(results))
    return 0 if all(r.passed for r in results) else 1


def _cmd_plan(args: argparse.Namespace) -> int:
    from .plan import estimate, plan_table, render
    from .profiles import load_profile

    profile = load_profile(args.profile)
    table = plan_table(profile, estimate(profile, args.data_dir, args.speed))
    print(render(profile, table, args.speed))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .profiles import load_profile
    from .status import render, status_table

    profile = load_profile(args.profile)
    print(render(profile, status_table(profile, args.out, args.storage, args.data_dir)))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .parallel import run_parallel
    from .profiles import load_profile

    profile = load_profile(args.profile)
    summary = run_parallel(profile, args.out, workers=args.workers, overwrite=args.overwrite,
                           tracking_uri=args.tracking_uri, data_dir=args.data_dir, track=not args.no_track,
                           storage=args.storage)
    print(summary)
    return 0


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="task name (see 'regbench ls tasks') or a task YAML path")
    p.add_argument("--method", default="std", help="method name (see 'regbench ls methods'); default: std")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a method hyperparameter (repeatable)")
    p.add_argument("--model", default="minilm", help="'minilm' (packaged all-MiniLM-L6-v2), 'tiny-random-bert', an HF name or a path")
    p.add_argument("--pooling", choices=["mean", "cls", "pooler"], help="sentence representation (default: the checkpoint's)")
    p.add_argument("--train-size", default="64", help="64 / n64 in total, k16 per class (LM-BFF style), or 'full' (default 64)")
    p.add_argument("--noise", type=float, default=0.0, help="label-noise rate in [0, 1) on train and dev (test stays clean)")
    p.add_argument("--noise-type", default="symmetric", choices=["symmetric", "asymmetric"],
                   help="symmetric (uniform over other classes) or asymmetric (the task YAML's flip map)")
    p.add_argument("--dev-size", type=int, help="dev examples carved from the pool (default: = train size; full: 10%%, ≤ 2000)")
    p.add_argument("--max-test", type=int, help="cap the test set at a fixed stratified subsample of this size")
    p.add_argument("--max-length", type=int, default=128, help="truncation length in tokens (default 128)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4, suited to MiniLM; tune per method)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1, help="derives the data split, noise draw and initialisation")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 autocast on a bf16 GPU, else fp32")
    p.add_argument("--data-dir", help="Parquet mirror directory (default: $REGBENCH_DATA_DIR or ../shared/data)")
    p.add_argument("--tasks-dir", action="append", help="also load task YAMLs from this directory (repeatable)")
    p.add_argument("--out", default="results/runs", help="output directory for records and the MLflow store (default results/runs)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<out>/mlflow.db)")
    p.add_argument("--experiment", default="regbench", help="MLflow experiment name")
    p.add_argument("--no-track", action="store_true", help="write the record only, no MLflow run")
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from .api import RunConfig, run
    from .train import TrainConfig

    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise ConfigError(f"--lr must be a positive number, got {args.lr}")
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                            device=args.device, precision=args.precision)
    config = RunConfig(
        task=args.task, method=args.method, method_params=_parse_params(args.param), model=args.model,
        pooling=args.pooling, train_size=_parse_size(args.train_size), dev_size=args.dev_size,
        max_test_examples=args.max_test, max_length=args.max_length, seed=args.seed, dropout=args.dropout,
        train=train_cfg, data_dir=args.data_dir, out_dir=args.out, tracking_uri=args.tracking_uri,
        experiment=args.experiment, track=not args.no_track, noise_rate=args.noise, noise_type=args.noise_type,
    )
    record = run(config)
    _print_summary(record)
    return 0


def _parse_size(text: str) -> int | str | None:
    from regbench.benchmarks.fewshot import parse_size

    try:
        size = parse_size(text)
    except RegbenchError as err:
        raise ConfigError(f"--train-size: {err}") from None
    return size.total if size.per_class is None else size.label


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param expects NAME=VALUE, got {item!r}")
        params[name.strip()] = value.strip()
    return params


def _print_summary(record: dict[str, Any]) -> None:
    info, train_info = record["run_info"], record["train_info"]
    print(f"{info['task']} / {info['method']} / seed {info['seed']}: status {info['status']}, best epoch {train_info['best_epoch']}")
    for split in ("dev", "test"):
        values = record["metrics"].get(split) or {}
        print(f"  {split:4s} " + "  ".join(f"{k}={v:.4f}" for k, v in sorted(values.items())))
    print(f"  record: {record['_path']}")
    if info.get("mlflow_run_id"):
        print(f"  mlflow run: {info['mlflow_run_id']}")


def _cmd_ls(args: argparse.Namespace) -> int:
    if args.what == "tasks":
        from regbench.benchmarks.data import split_sizes
        from regbench.benchmarks.taskspec import all_tasks

        for t in all_tasks():
            extra = f"  {t.description}" if args.verbose else ""
            sizes = " ".join(f"{k}={'?' if n is None else n}" for k, n in split_sizes(t).items())
            print(f"{t.name:14s} v{t.version}  {t.type:21s} {sizes:22s} metrics={','.join(t.metrics)} "
                  f"primary={'+'.join(t.primary)}{extra}")
    elif args.what == "methods":
        from .method import METHODS

        for name, cls in METHODS.items():
            print(f"{name:14s} {cls.summary}")
            if args.verbose:
                for f in dataclasses.fields(cls.config_class):
                    print(f"    {f.name} = {f.default!r}: {f.metadata.get('help', '')}")
                for pname, dist in cls.search_space().items():
                    print(f"    search {pname}: {dist}")
    else:
        from .profiles import list_profiles

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
def _add_leaderboard(sub: Any) -> None:
    lb = sub.add_parser("leaderboard", help="tables, tests, plots and index.html from a profile's result records")
    lb.add_argument("--profile", help="profile name: reads results/<profile>/records, writes results/<profile>/")
    lb.add_argument("--records", help="records directory (default: <out>/records)")
    lb.add_argument("--cells", help="cell summaries directory (default: beside the records, cells/)")
    lb.add_argument("--out", help="output directory (default: results/<profile>, or the parent of --records)")
    lb.add_argument("--tracking-uri", help="MLflow URI for the 'leaderboard' run (default: SQLite in the output dir)")
    lb.add_argument("--no-track", action="store_true", help="write the files only, no MLflow run")
    lb.set_defaults(handler=_cmd_leaderboard)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .leaderboard import build_leaderboard
    from .tracking import default_tracking_uri

    if not args.profile and not args.records:
        raise ConfigError("leaderboard needs --profile or --records")
    records = Path(args.records) if args.records else Path(args.out or f"results/{args.profile}") / "records"
    out = Path(args.out) if args.out else Path(f"results/{args.profile}") if args.profile else records.parent
    command = " ".join(["regbench leaderboard", *(f"--{k} {v}" for k, v in (
        ("profile", args.profile), ("records", args.records), ("cells", args.cells), ("out", args.out)) if v)])
    uri = None if args.no_track else (args.tracking_uri or default_tracking_uri(out))
    summary = build_leaderboard(records, out, args.profile, cells_dir=args.cells or records.parent / "cells",
                                command=command, tracking_uri=uri)
    for line in summary["skipped"]:
        print(f"regbench: {line}", file=sys.stderr)
    print(f"leaderboard: {summary['records']} records, {len(summary['skipped'])} skipped → {out}/leaderboard.md, "
          f"index.html, leaderboard.tex, leaderboard.csv, plots/")
    if summary["mlflow_run_id"]:
        print(f"  mlflow run: {summary['mlflow_run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Optuna storage overhead per trial: the journal file (default) vs SQLite vs PostgreSQL (cluster mode).

    python benchmarks/perf/storage.py [--trials 20] [--epochs 10] [--repeats 5] [--postgres URL]   (or: nox -s perf)

Runs the grid's tuning loop (``harness.grid.tune.tune`` with the grid's per-epoch pruning report and the median pruner)
with an objective that trains nothing, so what is timed is only what the storage costs a trial: the stale-trial
check, the budget count, ask, the worker attribute, one report and pruning decision per epoch, the heartbeat thread
(databases) and tell. One fresh study per store and repeat, stores interleaved, median of the repeats. PostgreSQL is
measured when ``--postgres`` (or ``$REGBENCH_TEST_POSTGRES_URL``) names a server on which a scratch database can be
created. Writes ``results/perf/storage.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution

from regbench.harness import grid
from regbench.harness.grid import liveness, tune
from regbench.harness.grid.storage import describe, open_storage

SPACE: dict[str, BaseDistribution] = {"lr": FloatDistribution(1e-5, 1e-3, log=True)}  # STD's search space
# The shortest real trials measured here, to put the overhead in proportion: results/perf/cell.md's unpruned
# studies (SST-2 k=16, MiniLM, 10 epochs) trained 80 trials in 539.3 s.
REFERENCE_TRIAL_SECONDS = 539.3 / 80


def objective_without_training(epochs: int):
    def objective(trial) -> tune.TrialOutcome:
        report = grid.pruning_report(trial)
        for epoch in range(1, epochs + 1):
            if report(epoch, {"dev_primary": 0.5 + 0.01 * epoch + 0.001 * trial.number}):
                return tune.TrialOutcome(None, True, epoch, 0.0)
        return tune.TrialOutcome(0.5 + 0.01 * epochs, False, epochs, 0.0)
    return objective


def ms_per_trial(storage, trials: int, epochs: int) -> float:
    study = tune.open_study(storage, uuid.uuid4().hex, liveness.worker_id(), {"type": "median"})
    start = time.perf_counter()
    tune.tune(study, trials, SPACE, objective_without_training(epochs), storage=storage)
    return (time.perf_counter() - start) * 1000 / trials


def scratch_postgres(server: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server (dropped by the returned callable)."""
    import psycopg

    name = f"regbench_perf_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return server.rsplit("/", 1)[0] + f"/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per study (the paper profile's budget: 20)")
    parser.add_argument("--epochs", type=int, default=10, help="reports per trial")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("REGBENCH_TEST_POSTGRES_URL"),
                        help="a PostgreSQL server URL on which a scratch database may be created")
    parser.add_argument("--out", default="results/perf/storage.md")
    args, _ = parser.parse_known_args()  # nox -s perf passes its arguments to every script
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, Any] = {
            "journal file": open_storage(Path(tmp), str(Path(tmp) / "optuna.journal")),
            "SQLite (RDB, heartbeat)": open_storage(Path(tmp), f"sqlite:///{tmp}/optuna.db")}
        drop: Callable[[], None] | None = None
        if args.postgres:
            url, drop = scratch_postgres(args.postgres)
            stores["PostgreSQL (RDB, heartbeat)"] = open_storage(Path(tmp), url)
        try:
            samples: dict[str, list[float]] = {name: [] for name in stores}
            for repeat in range(args.repeats):
                for name, storage in stores.items():
                    samples[name].append(ms_per_trial(storage, args.trials, args.epochs))
                    print(f"repeat {repeat + 1}/{args.repeats} {name}: {samples[name][-1]:.1f} ms/trial", flush=True)
        finally:
            if drop:
                stores.pop("PostgreSQL (RDB, heartbeat)").engine.dispose()
                drop()
    write_report(samples, args)


def write_report(samples: dict[str, list[float]], args: argparse.Namespace) -> None:
    base = statistics.median(samples["journal file"])
    rows = [f"| {name} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} | "
            f"{statistics.median(v) / base:.2f}× | {statistics.median(v) / 10 / REFERENCE_TRIAL_SECONDS:.2f}% |"
            for name, v in samples.items()]
    server = describe(args.postgres) if args.postgres else "not measured (no --postgres)"
    text = f"""# Optuna storage overhead per trial

Generated by `python benchmarks/perf/storage.py --trials {args.trials} --epochs {args.epochs} --repeats {args.repeats}`
(`nox -s perf`).

Machine: {platform.platform()}, {os.cpu_count()} CPUs. PostgreSQL: {server} (same machine, loopback).
What is timed: the grid's tuning loop on a fresh study of {args.trials} trials with an objective that trains nothing
and reports {args.epochs} epochs to the median pruner, so each figure is what the storage costs one trial (stale
check, budget count, ask, report and pruning decision per epoch, heartbeat thread for databases, tell). Stores
interleaved; median of {args.repeats} repeats.

| store | median ms per trial | all repeats | vs journal | of a {REFERENCE_TRIAL_SECONDS:.1f} s trial |
| --- | ---: | --- | ---: | ---: |
{chr(10).join(rows)}

The last column puts each figure beside the shortest real trials measured here (`results/perf/cell.md`: SST-2 k=16,
MiniLM, 10 epochs, {REFERENCE_TRIAL_SECONDS:.1f} s a trial); larger cells train longer, so the share only shrinks. The
journal stays the default on one machine (fastest, no server); a database is for workers on several machines.
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

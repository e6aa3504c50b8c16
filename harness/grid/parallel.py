"""Running a grid with several worker processes on one machine, and the per-cell summary printed at the end.

Workers are separate processes (spawned, so each holds its own copy of the pretrained weights and tokenized data)
that walk the same cells: they share each cell's Optuna study through the journal file (the budget check keeps
them from overshooting by more than workers − 1 trials) and claim final runs with lock files. MLflow's SQLite store
must not be written by several processes, so with more than one worker a loopback ``mlflow server`` over that
SQLite file takes the writes (unless ``--tracking-uri`` names a server already).

A second `bench` on the same output directory refuses in one line (:class:`BenchLock`) unless the grid runs in
cluster mode; workers report their errors through the parent, so a failing grid prints one line, not one
traceback per worker.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import Fault, Interrupted, RegbenchError, check_dir, describe
from ..io import tracking
from ..io.cell_summaries import CELLS, read_cell_summaries
from .liveness import heartbeat_seconds
from .profiles import Profile, load_profile
from .runner import GridOptions, output_dir, run_grid
from .storage import open_storage, resolve


def run_parallel(profile: Profile, out: str | None = None, *, workers: int = 1, **settings: Any) -> str:
    """Run the grid with ``workers`` processes; return the per-cell summary as text. ``settings``: GridOptions'
    fields (with a database ``storage``, the same command on several machines shares one grid)."""
    options = GridOptions(**settings)
    tracking_uri, track, storage = options.tracking_uri, options.track, options.storage
    if workers < 1:
        raise RegbenchError(f"--workers must be ≥ 1, got {workers}")
    out_dir = check_dir(output_dir(profile, out), "--out")
    heartbeat_seconds()  # a bad $REGBENCH_HEARTBEAT_SECONDS is one error line before any run, not in the middle
    if track and tracking_uri:  # an unanswered server must fail in seconds, not hang the first run for minutes
        tracking.check_tracking_uri(tracking_uri)
    with BenchLock(out_dir, cluster=_cluster_mode(out_dir, storage, tracking_uri, track)):
        open_storage(out_dir, storage)  # a bad --storage is one error line before any run; a database gets its tables
        if workers == 1:
            run_grid(profile, out_dir, options)
            return summary_text(out_dir)
        with _tracking_server(out_dir, tracking_uri, track) as uri:
            _run_workers(profile, out_dir, dataclasses.replace(options, tracking_uri=uri), workers)
    return summary_text(out_dir)


def _run_workers(profile: Profile, out_dir: Path, options: GridOptions, workers: int) -> None:
    """Start the workers and wait; on an error or an interruption here, stop them before reporting it (a worker
    stopped between two records loses nothing: records are atomic, claims and trials of the dead are taken over)."""
    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()  # each failed worker's one line: the parent reports it, once
    started = time.time()  # one start for all workers: what `--overwrite always` re-runs (harness.grid)
    procs = [context.Process(target=_worker, args=(profile.path, str(out_dir),
                                                   dataclasses.replace(options, worker_index=i, started=started),
                                                   errors))
             for i in range(workers)]
    try:
        with _workers_deaf_to_ctrl_c():
            for proc in procs:
                proc.start()
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:  # SIGTERM: a worker unwinds as at Ctrl-C (_worker), releasing what it holds
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        first = errors.get() if not errors.empty() else f"exit codes {failed}"
        raise RegbenchError(f"{len(failed)} of {workers} workers failed, the first with: {first}")


@contextmanager
def _workers_deaf_to_ctrl_c():
    """Workers start with SIGINT ignored (an ignored signal survives spawn's exec), so Ctrl-C, which the terminal
    sends to the whole process group, reaches only the parent, and the parent stops each worker with one SIGTERM.
    One signal per worker: a worker hit by Ctrl-C and then by the parent's SIGTERM was interrupted while unwinding
    from the first (a fresh-clone CI run printed such a double traceback), and one still importing (spawn) had no
    handler yet. A Ctrl-C in the milliseconds the parent spends starting the processes is ignored."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal works only there
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker(profile_path: str, out: str, options: GridOptions, errors: Any = None) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_grid(load_profile(profile_path), out, options)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the parent says it once
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent's SIGTERM may follow: we are on our way out
        sys.exit(130)
    except (Exception, Fault) as err:  # one line through the parent, not a traceback per worker
        if os.environ.get("REGBENCH_DEBUG"):
            traceback.print_exc()
        if errors is not None:
            errors.put(describe(err))
        sys.exit(2)


def _interrupt(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM would strike the unwinding of the first
    raise Interrupted()


def _cluster_mode(out_dir: Path, storage: str | None, tracking_uri: str | None, track: bool) -> bool:
    """Several `bench` processes may share this output directory only in cluster mode (README): the studies in a
    database (heartbeats tell live workers from dead ones) and the runs on a server or off. Anything else keeps
    machine-local state that two commands must not share (the SQLite mlflow.db, the worker-indexed samplers)."""
    server = not track or (tracking_uri or "").startswith(("http://", "https://"))
    return server and isinstance(resolve(out_dir, storage), str)


class BenchLock:
    """``<out>/bench.lock``: one `bench` per output directory (outside cluster mode). The second one refuses in one
    line naming the first (pid, host, start time), before it touches a store. The lock is an ``flock`` held for the
    command's life, so the kernel drops it when the holder dies however it dies: a lock file left behind by a
    killed run is stale by construction and is simply taken over."""

    def __init__(self, out_dir: Path, cluster: bool = False) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self.cluster = cluster
        self.handle: Any = None
        self.created = False

    def __enter__(self) -> BenchLock:
        if self.cluster:
            return self
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise RegbenchError(f"{self.path.parent} is in use by another `regbench bench` ({holder}); wait for it "
                                "to finish, or stop it and re-run to resume (--workers N runs several workers "
                                "in one command)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}) + "\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self.handle is None:
            return
        if exc_type is not None and self.created and os.listdir(self.path.parent) == [LOCK_NAME]:
            self.path.unlink()  # bad input stopped the grid before it wrote anything: leave no trace
            self.path.parent.rmdir()
        self.handle.close()  # releases the flock; the file stays, naming the last holder
        self.handle = None


LOCK_NAME = "bench.lock"


def _holder(text: str) -> str:
    try:
        found = json.loads(text)
        return f"pid {found['pid']} on {found['host']}, started {found['started']}"
    except (ValueError, KeyError, TypeError):
        return "its details are unreadable"


@contextmanager
def _tracking_server(out_dir: Path, tracking_uri: str | None, track: bool):
    """Yield the URI workers should use: the given one, or a loopback server over the profile's SQLite store."""
    if not track or tracking_uri:
        yield tracking_uri
        return
    store = tracking.default_tracking_uri(out_dir)
    tracking.connect(store).search_experiments()  # create/migrate the schema once, before the server opens it
    port = _free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1", "--no-serve-artifacts",
               "--default-artifact-root", (out_dir.resolve() / "mlartifacts").as_uri()]
    log = (out_dir / "mlflow-server.log").open("ab")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait_until_up(uri, server)
        yield uri
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(uri: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RegbenchError(f"the loopback mlflow server exited with code {server.returncode}; "
                                "see mlflow-server.log")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RegbenchError(f"the loopback mlflow server did not answer within {timeout:.0f} s")


def summary_table(out_dir: str | Path) -> pd.DataFrame:
    """One row per cell from the cell files: best parameters, tuning cost and test mean ± std over seeds."""
    rows = []
    for _, cell in read_cell_summaries(Path(out_dir) / CELLS):
        if isinstance(cell, Exception):
            continue  # a summary being rewritten: the next look shows it
        tests = pd.Series([f.get("test_primary") for f in cell["finals"]], dtype="float64")
        rows.append({"task": cell["task"], "size": cell["size"], "noise": cell["noise_rate"], "method": cell["method"],
                     "trials": cell["n_complete"] + cell["n_pruned"], "pruned": cell["n_pruned"],
                     "best_dev": cell["best_value"], "test_mean": tests.mean(), "test_std": tests.std(),
                     "seeds": int(tests.notna().sum()),
                     "failed": sum(f["status"] in ("failed", "diverged", "error") for f in cell["finals"]),
                     "minutes": cell["wall_seconds"] / 60,
                     "best_params": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in sorted((cell["best_params"] or {}).items()))})
    return pd.DataFrame(rows)


def summary_text(out_dir: str | Path) -> str:
    table = summary_table(out_dir)
    if table.empty:
        return f"no cell results under {out_dir}"
    table = table.sort_values(["task", "size", "noise", "method"])
    return f"results in {out_dir}\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def _main() -> Any:  # pragma: no cover - convenience: python -m regbench.harness.grid.parallel <out_dir>
    print(summary_text(sys.argv[1]))


if __name__ == "__main__":  # pragma: no cover
    _main()

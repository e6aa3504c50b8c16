"""The bad inputs and faults of tests/test_bad_inputs.py, one row each: the command line, and the words its one
``regbench: error:`` line must contain. Setup happens in the builder, in the test's temporary directory."""

from __future__ import annotations

import fcntl
import json
import socket
from pathlib import Path

from badinput_helpers import Case, Ctx, closed_port
from grid_profiles import records_of

from regbench.harness.io import records, tracking


def _refused(scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{closed_port()}"


def _silent_server(ctx: Ctx) -> list[str]:
    """A server that takes the connection and never answers (a hung host behind a load balancer)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    ctx.keep = server
    ctx.monkeypatch.setattr(tracking, "CONNECT_SECONDS", 1.0)
    return ctx.run("--task", "sst2", "--tracking-uri", f"http://127.0.0.1:{server.getsockname()[1]}")


def _held_lock(ctx: Ctx) -> list[str]:
    """Another `bench` holds the output directory: a lock file with its details, flocked by a second handle."""
    out = Path(ctx.out)
    out.mkdir()
    handle = (out / "bench.lock").open("a+")
    handle.write(json.dumps({"pid": 4242, "host": "otherhost", "started": "2026-12-05 07:00:00 UTC"}) + "\n")
    handle.flush()
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ctx.keep = handle  # held until the test ends
    return ctx.grid("bench", None, "--no-track")


def _disk_full_on_second_record(ctx: Ctx) -> list[str]:
    ctx.fsync_fails(records, after=1)  # the first final run's record is written, the second one's is not
    return ctx.grid("bench", ctx.profile(seeds=[1, 2]), "--no-track")


def _resumes(ctx: Ctx) -> None:
    (kept,) = records_of(Path(ctx.out))  # complete and parseable, not half-written
    assert kept["run_info"]["seed"] == 1
    ctx.monkeypatch.undo()  # space is free again: the same command finishes the grid
    assert ctx.main(ctx.argv) == 0
    assert sorted(r["run_info"]["seed"] for r in records_of(Path(ctx.out))) == [1, 2]


def _mlflow_disk_full(ctx: Ctx) -> list[str]:
    ctx.mlflow_disk_full(after=4)  # in the middle of the first trial's logging
    return ctx.grid("bench", ctx.profile(seeds=[1]))


def _resumes_with_the_budget(ctx: Ctx) -> None:
    ctx.monkeypatch.undo()
    assert ctx.main(ctx.argv) == 0
    (cell,) = Path(ctx.out).glob("cells/*/*/*.json")
    summary = json.loads(cell.read_text())
    assert summary["n_complete"] == 1 and len(records_of(Path(ctx.out))) == 1  # the trial was redone, not scored


def _unreadable_task(ctx: Ctx) -> list[str]:
    path = ctx.task()
    path.write_bytes(b"name: mytask\nnotes: \xff\xfe\n")
    return ctx.run("--task", str(path))


def _profile_dir(ctx: Ctx) -> list[str]:
    folder = ctx.tmp / "folder.yaml"
    folder.mkdir()
    return ctx.grid("bench", folder)


def _disk_full_run(ctx: Ctx) -> list[str]:
    ctx.fsync_fails(records, after=0)
    return ctx.run("--task", "sst2")


def _no_record_left(ctx: Ctx) -> None:
    assert not list(Path(ctx.out).rglob("*.json")) and not list(Path(ctx.out).rglob("*.part"))


CORRUPT = "is corrupt or truncated"
NO_ANSWER = "does not answer within"
CASES = [
    # ---- run -------------------------------------------------------------------------------------------------
    Case("run-truncated-parquet", lambda c: c.run("--task", "sst2", "--data-dir", c.mirror()), CORRUPT),
    Case("run-not-parquet", lambda c: c.run("--task", "sst2", "--data-dir", c.mirror("garbage")), CORRUPT),
    Case("run-out-is-a-file", lambda c: c.run("--task", "sst2", "--out", c.file()), "is an existing file"),
    Case("run-out-under-a-file", lambda c: c.run("--task", "sst2", "--out", c.file() + "/sub"),
         "cannot hold a directory"),
    Case("run-uri-refused", lambda c: c.run("--task", "sst2", "--tracking-uri", _refused()), NO_ANSWER),
    Case("run-uri-silent", _silent_server, "does not answer within 1 s (timed out)"),
    Case("run-uri-https-refused", lambda c: c.run("--task", "sst2", "--tracking-uri", _refused("https")), NO_ANSWER),
    Case("run-uri-unknown-scheme", lambda c: c.run("--task", "sst2", "--tracking-uri", "foo://x"),
         "unknown scheme 'foo'"),
    Case("run-uri-file-store", lambda c: c.run("--task", "sst2", "--tracking-uri", str(c.tmp / "mlruns")),
         "unknown scheme '(none)'"),
    Case("run-uri-sqlite-missing-folder",
         lambda c: c.run("--task", "sst2", "--tracking-uri", "sqlite:////nonexistent/x/mlflow.db"), "does not exist"),
    Case("run-uri-postgres-refused",
         lambda c: c.run("--task", "sst2", "--tracking-uri", _refused("postgresql") + "/db"), NO_ANSWER),
    Case("run-uri-bad-port", lambda c: c.run("--task", "sst2", "--tracking-uri", "postgresql://me@db:port/x"),
         "is not a valid URL"),
    Case("run-uri-not-mlflow", lambda c: c.run("--task", "sst2", "--tracking-uri", c.http404),
         "is not an MLflow server"),
    Case("run-task-num-labels-word", lambda c: c.run("--task", str(c.task("num_labels: two\n"))),
         "num_labels must be an integer"),
    Case("run-task-metric-mapping", lambda c: c.run("--task", str(c.task("metrics: [{accuracy: 1}]\n"))),
         "metrics must be metric names"),
    Case("run-task-bad-yaml", lambda c: c.run("--task", str(c.task("primary: [accuracy\n"))), "is not valid YAML"),
    Case("run-task-not-utf8", _unreadable_task, "cannot be read"),
    Case("run-task-version-bool", lambda c: c.run("--task", str(c.task("version: true\n"))),
         "version must be an integer"),
    Case("run-disk-full", _disk_full_run, "disk full while writing", writes_nothing=False, after=_no_record_left),
    # ---- bench -----------------------------------------------------------------------------------------------
    Case("bench-noise-trap", lambda c: c.grid("bench", c.profile("noise: [1e-1x]\n")), "noise must list numbers"),
    Case("bench-low-not-a-number", lambda c: c.grid("bench", c.profile(
        "search_space: {std: {lr: {low: 1e-5x, high: 1e-3}}}\n")), "low and high must be finite numbers"),
    Case("bench-epochs-word", lambda c: c.grid("bench", c.profile("epochs: three\n")), "epochs must be an integer"),
    Case("bench-weight-decay-word", lambda c: c.grid("bench", c.profile("train: {weight_decay: lots}\n")),
         "train.weight_decay must be a number"),
    Case("bench-method-params-scalar", lambda c: c.grid("bench", c.profile("method_params: {std: 1}\n")),
         "method_params must be a mapping"),
    Case("bench-pruner-list", lambda c: c.grid("bench", c.profile("pruner: [1, 2]\n")), "pruner must be"),
    Case("bench-task-number", lambda c: c.grid("bench", c.profile("tasks: [3]\n")), "tasks must list task names"),
    Case("bench-profile-is-a-folder", _profile_dir, "cannot be read"),
    Case("bench-profile-bad-yaml", lambda c: c.grid("bench", c.profile("tasks: [sst2\n")), "is not valid YAML"),
    Case("bench-out-is-a-file", lambda c: c.grid("bench", None, "--out", c.file()), "is an existing file"),
    Case("bench-uri-unknown-scheme", lambda c: c.grid("bench", None, "--tracking-uri", "ftp://host/x"),
         "unknown scheme 'ftp'"),
    Case("bench-uri-refused", lambda c: c.grid("bench", None, "--tracking-uri", _refused()), NO_ANSWER),
    Case("bench-second-process", _held_lock, "in use by another `regbench bench` (pid 4242 on otherhost",
         writes_nothing=False),
    Case("bench-workers-zero", lambda c: c.grid("bench", None, "--workers", "0"), "--workers must be ≥ 1"),
    Case("bench-storage-is-a-folder", lambda c: c.grid("bench", None, "--storage", str(c.tmp)), "is a directory"),
    Case("bench-storage-unknown-db", lambda c: c.grid("bench", None, "--storage", "nosuchdb://h/db"),
         "is not a database SQLAlchemy knows"),
    Case("bench-truncated-parquet", lambda c: c.grid("bench", None, "--no-track", "--data-dir", c.mirror()), CORRUPT,
         writes_nothing=False),
    Case("bench-workers-truncated-parquet", lambda c: c.grid("bench", None, "--no-track", "--workers", "2",
                                                             "--data-dir", c.mirror()),
         "workers failed, the first with: data file", writes_nothing=False),
    Case("bench-disk-full-mid-grid", _disk_full_on_second_record, "disk full while writing", writes_nothing=False,
         after=_resumes),
    Case("bench-mlflow-store-full", _mlflow_disk_full, "disk full while writing the MLflow SQLite store",
         writes_nothing=False, after=_resumes_with_the_budget),
    # ---- plan ------------------------------------------------------------------------------------------------
    Case("plan-csv-is-a-folder", lambda c: c.grid("plan", None, "--csv", str(c.tmp)), "--csv"),
    Case("plan-csv-missing-folder", lambda c: c.grid("plan", None, "--csv", str(c.tmp / "no" / "plan.csv")), "--csv"),
    Case("plan-size-bool", lambda c: c.grid("plan", c.profile("sizes: [true]\n")), "sizes must list"),
    Case("plan-dropout-range", lambda c: c.grid("plan", c.profile("dropout: 1.5\n")), "dropout must be a number"),
    Case("plan-quoted-number", lambda c: c.grid("plan", c.profile(
        "search_space: {std: {lr: {low: 1e-5, high: '1e-3'}}}\n")), "low and high must be finite numbers"),
    Case("plan-truncated-parquet", lambda c: c.grid("plan", None, "--data-dir", c.mirror()), CORRUPT),
    Case("plan-unknown-profile", lambda c: c.grid("plan", Path("smok")), "did you mean 'smoke'"),
    # ---- validate --------------------------------------------------------------------------------------------
    Case("validate-truncated-parquet", lambda c: ["validate", "sst2", "--data-dir", c.mirror()], CORRUPT),
    Case("validate-not-parquet", lambda c: ["validate", "sst2", "--data-dir", c.mirror("garbage")], CORRUPT),
    Case("validate-version-bool", lambda c: ["validate", str(c.task("version: true\n")), "--no-data"],
         "version must be an integer"),
    Case("validate-resplit-list", lambda c: ["validate", str(c.task("resplit: [0.2, 1]\n")), "--no-data"],
         "resplit must be a mapping"),
    Case("validate-label-names-nested", lambda c: ["validate", str(c.task("label_names: [[a], b]\n")), "--no-data"],
         "label_names must be a list of label names"),
    Case("validate-source-number", lambda c: ["validate", str(c.task("source: {mirror: 3}\n")), "--no-data"],
         "source must be"),
    Case("validate-missing-file", lambda c: ["validate", str(c.tmp / "nope.yaml")], "does not exist"),
    Case("validate-tasks-dir-is-a-file", lambda c: ["validate", "--tasks-dir", c.file(), "--no-data"],
         "tasks directory"),
    # ---- leaderboard -----------------------------------------------------------------------------------------
    Case("leaderboard-nothing-named", lambda c: ["leaderboard"], "needs --profile or --records"),
    Case("leaderboard-no-records", lambda c: ["leaderboard", "--records", str(c.tmp / "none"), "--no-track",
                                              "--out", c.out], "does not exist"),
    Case("leaderboard-out-is-a-file", lambda c: ["leaderboard", "--records", str(c.tmp), "--out", c.file()],
         "is an existing file"),
    Case("leaderboard-uri-unknown-scheme", lambda c: ["leaderboard", "--records", str(c.tmp), "--out", c.out,
                                                      "--tracking-uri", "foo://x"], "unknown scheme 'foo'"),
    Case("leaderboard-uri-refused", lambda c: ["leaderboard", "--records", str(c.tmp), "--out", c.out,
                                               "--tracking-uri", _refused()], NO_ANSWER),
    # ---- check-method ----------------------------------------------------------------------------------------
    Case("check-method-unknown", lambda c: ["check-method", "stdd"], "unknown method 'stdd'"),
    Case("check-method-param-format", lambda c: ["check-method", "std", "--param", "alpha"],
         "--param expects NAME=VALUE"),
    Case("check-method-param-unknown", lambda c: ["check-method", "std", "--param", "alpha=1"],
         "has no parameter 'alpha'"),
]

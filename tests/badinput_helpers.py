"""The table of bad inputs and faults for tests/test_bad_inputs.py: each case builds a command line (and whatever it
needs on disk) in a temporary directory and names the words its one error line must contain."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from grid_profiles import BASE

from regbench.benchmarks.taskspec import get_task

TINY_RUN = ["run", "--model", "tiny-random-bert", "--train-size", "16", "--epochs", "1", "--max-test", "20"]


@dataclass
class Ctx:
    tmp: Path
    data_dir: str
    monkeypatch: Any
    http404: str  # a local HTTP server that answers every request with 404
    main: Callable[[list[str]], int]
    argv: list[str] = field(default_factory=list)
    keep: Any = None  # something the case holds until the test ends (a lock)

    @property
    def out(self) -> str:
        return str(self.tmp / "out")

    def run(self, *args: str, track: bool = False) -> list[str]:
        argv = [*TINY_RUN, "--out", self.out, *args]
        argv += [] if "--data-dir" in args else ["--data-dir", self.data_dir]
        return argv + ([] if track or "--tracking-uri" in args else ["--no-track"])

    def grid(self, command: str, profile: Path | None = None, *args: str) -> list[str]:
        argv = [command, "--profile", str(profile or self.profile()), *args]
        argv += [] if "--data-dir" in args else ["--data-dir", self.data_dir]
        return argv + (["--out", self.out] if command == "bench" and "--out" not in args else [])

    def profile(self, text: str | None = None, **changes: Any) -> Path:
        """A small profile; ``text`` is raw YAML appended as written (the traps are in how YAML reads it)."""
        path = self.tmp / "grid.yaml"
        path.write_text(yaml.safe_dump({**BASE, "trials": 1, "epochs": 1, **changes}) + (text or ""))
        return path

    def task(self, text: str | None = None, **changes: Any) -> Path:
        """A copy of sst2's YAML named mytask, with changes; ``text``: raw YAML appended as written (a repeated key
        overrides the earlier one, so a trap can be spelled exactly)."""
        data = {k: v for k, v in yaml.safe_load(Path(get_task("sst2").path).read_text()).items() if k != "ood"}
        folder = self.tmp / "tasks"
        folder.mkdir(exist_ok=True)
        path = folder / "mytask.yaml"
        path.write_text(yaml.safe_dump({**data, "name": "mytask", **changes}) + (text or ""))
        return path

    def mirror(self, damage: str = "truncate") -> str:
        """A data dir whose sst2 train split is damaged (everything else links to the real mirror)."""
        root, real = self.tmp / "mirror", Path(self.data_dir)
        for entry in [*real.iterdir(), *(real / "glue").iterdir()]:
            if entry.name not in ("glue", "sst2"):
                link = root / entry.relative_to(real)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(entry)
        sst2 = root / "glue" / "sst2"
        sst2.mkdir(parents=True)
        (sst2 / "validation.parquet").symlink_to(real / "glue" / "sst2" / "validation.parquet")
        good = (real / "glue" / "sst2" / "train.parquet").read_bytes()
        bad = good[: len(good) // 3] if damage == "truncate" else b"this is not a parquet file\n" * 10
        (sst2 / "train.parquet").write_bytes(bad)
        return str(root)

    def file(self, name: str = "afile") -> str:
        path = self.tmp / name
        path.write_text("not a directory\n")
        return str(path)

    def fsync_fails(self, module: Any, after: int = 0) -> None:
        """``module``'s ``os.fsync`` fails with ENOSPC after ``after`` calls, as on a full disk (only there: the rest
        of the process, MLflow's SQLite included, writes as usual)."""
        calls = {"n": 0}

        def fsync(fd: int) -> None:
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        self.monkeypatch.setattr(module, "os", SimpleNamespace(**{**vars(os), "fsync": fsync}))

    def mlflow_disk_full(self, after: int = 0) -> None:
        """MLflow's SQLite store reports a full disk (as SQLAlchemy words it) after ``after`` batches."""
        import sqlite3

        import sqlalchemy.exc
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        real, calls = MlflowClient.log_batch, {"n": 0}

        def log_batch(client: Any, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] > after:
                cause = sqlite3.OperationalError("database or disk is full")
                raise MlflowException(sqlalchemy.exc.OperationalError("INSERT INTO metrics", {}, cause))
            return real(client, *args, **kwargs)
        self.monkeypatch.setattr(MlflowClient, "log_batch", log_batch)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connecting is refused at once


@dataclass
class Case:
    id: str
    build: Callable[[Ctx], list[str]]
    expect: str
    writes_nothing: bool = True  # bad input: the output directory is never created
    after: Callable[[Ctx], None] | None = field(default=None)

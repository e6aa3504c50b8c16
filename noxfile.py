"""Sessions: ``nox -s tests`` (pytest), ``smoke`` (CI-sized benchmark on a tiny random model), ``bench`` (the main
job on the real MiniLM), ``perf`` (performance benchmarks → results/perf/), ``lint`` (ruff).

tests/smoke/bench/perf share one environment (``.nox/shared``): a fresh environment costs ~1 GB and a minute, and
all four need the same packages. It is created on first use and re-installed only when pyproject.toml changes,
so reuse is the default; ``nox -R`` works as well.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
SHARED = ROOT / ".nox" / "shared"
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

BENCH_TASKS = ["sst2", "rte", "stsb", "conll2003"]


def shared_env(session: nox.Session) -> Path:
    """Create or refresh the shared environment; return its bin directory."""
    python = SHARED / "bin" / "python"
    stamp = SHARED / ".regbench-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(SHARED), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        # torch is pinned in pyproject (2.13.0, CPU wheel); installing it with everything else keeps pip from
        # choosing a CUDA build.
        session.run(str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]", external=True)
        stamp.write_text(wanted)
    return SHARED / "bin"


def run_per_task(session: nox.Session, *args: str) -> None:
    """One STD run per benchmark task (the grid issue replaces this with profiles)."""
    bin_dir = shared_env(session)
    for task in BENCH_TASKS:
        session.run(str(bin_dir / "regbench"), "run", "--task", task, "--method", "std", *args, external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny random model; real data from the mirror)."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "pytest"), *(session.posargs or ["-q"]), external=True)


@nox.session(venv_backend="none")
def smoke(session: nox.Session) -> None:
    """CI smoke benchmark: one tiny-model run per task, records under results/smoke/."""
    run_per_task(session, "--model", "tiny-random-bert", "--train-size", "32", "--epochs", "2", "--max-test", "200",
                 "--lr", "1e-3", "--seed", "1", "--out", "results/smoke", "--experiment", "smoke")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """The main job: a real MiniLM run per task (records and MLflow store under results/bench/)."""
    run_per_task(session, "--train-size", "64", "--epochs", "3", "--lr", "1e-4", "--seed", "1", "--out", "results/bench",
                 "--experiment", "bench", *session.posargs)
    session.log("Browse the runs:  mlflow ui --backend-store-uri sqlite:///results/bench/mlflow.db")


@nox.session(venv_backend="none")
def perf(session: nox.Session) -> None:
    """Performance benchmarks (MiniLM); each writes results/perf/<name>.md."""
    bin_dir = shared_env(session)
    for script in sorted((ROOT / "benchmarks" / "perf").glob("*.py")):
        if script.name != "__init__.py":
            session.run(str(bin_dir / "python"), str(script), *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the code folders and tests."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", "harness", "benchmarks", "regularizers", "baselines", "tests", "noxfile.py")

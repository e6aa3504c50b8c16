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

BENCH_PROFILE = "quick"  # the default of `nox -s bench`; `nox -s bench -- --profile small` picks another


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


def run_profile(session: nox.Session, default_profile: str) -> None:
    """Plan, then run (or resume) a profile's grid; extra arguments go to `regbench bench`."""
    bin_dir = shared_env(session)
    args = list(session.posargs)
    if "--profile" not in args:
        args = ["--profile", default_profile, *args]
    profile = args[args.index("--profile") + 1]
    session.run(str(bin_dir / "regbench"), "plan", "--profile", profile, external=True)
    session.run(str(bin_dir / "regbench"), "bench", *args, external=True)
    out = ["--out", args[args.index("--out") + 1]] if "--out" in args else []  # the leaderboard reads where bench wrote
    session.run(str(bin_dir / "regbench"), "leaderboard", "--profile", profile, *out, external=True)
    session.log(f"Browse the runs:  mlflow ui --backend-store-uri sqlite:///results/{profile}/mlflow.db")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (tiny random model; real data from the mirror)."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "pytest"), *(session.posargs or ["-q"]), external=True)


@nox.session(venv_backend="none")
def smoke(session: nox.Session) -> None:
    """CI smoke grid: every registered method on two tasks with the tiny random model (results/smoke/)."""
    run_profile(session, "smoke")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """The main job: the `quick` profile on the real MiniLM (results/quick/), then its leaderboard."""
    run_profile(session, BENCH_PROFILE)


@nox.session(venv_backend="none")
def leaderboard(session: nox.Session) -> None:
    """Regenerate a profile's leaderboard from its records (default: quick); arguments go to `regbench leaderboard`."""
    bin_dir = shared_env(session)
    args = list(session.posargs)
    if "--profile" not in args and "--records" not in args:
        args = ["--profile", BENCH_PROFILE, *args]
    session.run(str(bin_dir / "regbench"), "leaderboard", *args, external=True)


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

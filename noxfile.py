"""Sessions: ``nox -s tests`` (pytest), ``smoke`` (CI-sized benchmark on a tiny random model), ``bench`` (the main job
on the real MiniLM: your own grid, then a check that it reproduces the published one), ``reference`` (maintainers:
refresh the published grid under results/), ``perf`` (performance benchmarks → results/perf/), ``lint`` (ruff),
``typecheck`` (mypy), ``lock`` (refresh requirements-lock.txt), ``mutation`` (mutation testing of the method
modules; slow, not in CI).

tests/smoke/bench/perf share one environment (``.nox/shared``) installed from ``requirements-lock.txt`` (exact
versions with hashes; the CPU torch wheel): a fresh environment costs ~1 GB and a few minutes, and all of them need
the same packages. It is created on first use and re-installed only when pyproject.toml or the lock file changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
SHARED = ROOT / ".nox" / "shared"
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

BENCH_PROFILE = "quick"  # the default of `nox -s bench`; `nox -s bench -- --profile small` picks another


LOCK = ROOT / "requirements-lock.txt"


def shared_env(session: nox.Session) -> Path:
    """Create or refresh the shared environment from the lock file; return its bin directory."""
    python = SHARED / "bin" / "python"
    stamp = SHARED / ".regbench-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(SHARED), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        # Exact versions with hashes (torch: the CPU wheel — installed with everything else so pip never picks a
        # CUDA build), then regbench itself without dependencies: the environment is the lock file, nothing else.
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        session.run(*pip, "--require-hashes", "-r", str(LOCK), external=True)
        session.run(*pip, "--no-deps", "-e", str(ROOT), external=True)
        stamp.write_text(wanted)
    return SHARED / "bin"


def run_profile(session: nox.Session, default_profile: str, out: str = "results/{profile}") -> tuple[str, str]:
    """Plan, then run (or resume) a profile's grid into ``out`` (``{profile}`` is filled in; ``--out`` among the
    extra arguments wins), then its leaderboard; extra arguments go to `regbench bench`. Returns (profile, out)."""
    bin_dir = shared_env(session)
    args = list(session.posargs)
    if "--profile" not in args:
        args = ["--profile", default_profile, *args]
    profile = args[args.index("--profile") + 1]
    if "--out" not in args:
        args += ["--out", out.format(profile=profile)]
    out_dir = args[args.index("--out") + 1]
    session.run(str(bin_dir / "regbench"), "plan", "--profile", profile, external=True)
    session.run(str(bin_dir / "regbench"), "bench", *args, external=True)
    session.run(str(bin_dir / "regbench"), "leaderboard", "--profile", profile, "--out", out_dir, external=True)
    session.log(f"Browse the runs:  mlflow ui --backend-store-uri sqlite:///{out_dir}/mlflow.db")
    return profile, out_dir


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
    """The main job: the `quick` profile on the real MiniLM into results/runs/<profile>/ (your own grid, never over
    the published one), its leaderboard, then the check that every published final run (results/<profile>/)
    came back bit for bit on this machine: the last line says how many did."""
    profile, out_dir = run_profile(session, BENCH_PROFILE, out="results/runs/{profile}")
    if (ROOT / "results" / profile / "records").is_dir():
        session.run(str(SHARED / "bin" / "regbench"), "compare", f"results/{profile}", out_dir, external=True,
                    success_codes=[0, 1])
    else:
        session.log(f"no published results/{profile} to compare with")


@nox.session(venv_backend="none")
def reference(session: nox.Session) -> None:
    """Maintainers: refresh the published grid, results/<profile>/ (default quick), and its leaderboard. Delete the
    old records first (`git rm -r results/<profile>/records results/<profile>/cells`) to re-run everything, then
    commit the new records with the leaderboard."""
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


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """Refresh requirements-lock.txt from pyproject.toml with uv (keeps today's pins; `nox -s lock -- --upgrade` moves
    them). torch is the CPU wheel. A new lock can change numbers: re-run `nox -s bench` and say so in the notes."""
    bin_dir = shared_env(session)
    session.run(str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "uv==0.13.9", external=True)
    override = ROOT / ".nox" / "torch-cpu.txt"
    override.write_text("torch==2.13.0+cpu\n")
    # The CPU wheel: from pip's find-links where this machine keeps it, else PyTorch's CPU index.
    links = os.environ.get("PIP_FIND_LINKS")
    source = ["--find-links", links] if links else ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
    session.run(str(bin_dir / "uv"), "pip", "compile", "pyproject.toml", "--extra", "dev", "--extra", "cluster",
                "--generate-hashes", "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
                "--override", str(override), *source, "--custom-compile-command", "nox -s lock", "-o", str(LOCK),
                *session.posargs, external=True)


MUTATION_TESTS = ["tests/test_mechanisms.py", "tests/test_mechanisms_mvcr.py", "tests/test_mechanisms_weights.py",
                  "tests/test_mechanisms_sparse.py", "tests/test_mechanisms_repina.py", "tests/test_baselines_core.py",
                  "tests/test_baselines_extended.py", "tests/test_mvcr.py", "tests/test_repina.py",
                  "tests/conformance/test_conformance.py"]


# Each method module with the pytest -k expression that selects its own tests (mechanism, unit, conformance) and those
# of the methods that import it (SMART uses R3F's divergences, ReInit LLRD's layer list).
MUTATION_MODULES = {
    "regularizers/repina.py": "repina", "regularizers/mvcr.py": "mvcr", "regularizers/_hae.py": "mvcr",
    "baselines/smart.py": "smart", "baselines/r3f.py": "r3f or r4f or smart", "baselines/lp_ft.py": "lp_ft or lp-ft",
    "baselines/l2_sp.py": "l2_sp or l2sp or l2-sp", "baselines/child_tuning.py": "childtuning or fisher",
    "baselines/mixout.py": "mixout", "baselines/llrd.py": "llrd or reinit", "baselines/noisytune.py": "noisytune",
    "baselines/reinit.py": "reinit", "baselines/mvcr_mixout.py": "mixout", "baselines/freeze.py": "freeze",
    "baselines/std_plus_plus.py": "std++ or std_plus_plus", "baselines/std.py": "std",
}


def mutation_options(posargs: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s mutation --", description="mutation testing of method modules")
    parser.add_argument("modules", nargs="*", help="module paths (default: every method module)")
    parser.add_argument("--sample", type=int, default=0, help="mutants run per module (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="modules tested at once, each in its own clone")
    parser.add_argument("--retest-survivors", action="store_true", help="test last run's survivors again")
    options = parser.parse_args(posargs)
    unknown = [module for module in options.modules if module not in MUTATION_MODULES]
    if unknown:
        parser.error(f"not a method module: {', '.join(unknown)}; choose from {', '.join(MUTATION_MODULES)}")
    options.modules = options.modules or list(MUTATION_MODULES)
    return options


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing of method modules with cosmic-ray (slow: not in CI). cosmic-ray edits the module in place, so
    it runs on throwaway clones of HEAD under .nox/mutation-work/ (one per job), whose sources the shared environment
    imports through PYTHONPATH; each module is tested by its own tests (MUTATION_MODULES), golden files excluded (they
    only pin numbers). Mutants inside signature annotations are skipped (equivalent by construction). A mutant costs
    tens of CPU-seconds and there are thousands, so ``--sample K`` runs K seeded-random mutants per module (a larger
    K later extends the same sample). An interrupted session resumes where it stopped; after adding tests,
    ``--retest-survivors`` runs the survivors again. Writes results/mutation.md (scores with intervals, every
    survivor; tests/mutation_equivalent.toml says which survivors are equivalent and why).

        nox -s mutation -- --sample 30 --jobs 2
        nox -s mutation -- baselines/noisytune.py regularizers/mvcr.py --retest-survivors"""
    options = mutation_options(session.posargs)
    session.install("cosmic-ray==8.7.0")
    bin_dir, work = shared_env(session), ROOT / ".nox" / "mutation-work"
    lanes = [mutation_clone(session, work, lane) for lane in range(max(1, options.jobs))]
    data = os.environ.get("REGBENCH_DATA_DIR") or str(ROOT.parent / "shared" / "data")  # the clones have no ../shared
    threads = "OMP_NUM_THREADS=1 " if len(lanes) > 1 else ""  # lanes share the cores instead of fighting for them

    plan = []  # (clone, config, db): prepared one by one (session.chdir is process-wide), then run in lanes
    for index, module in enumerate(options.modules):
        clone = lanes[index % len(lanes)]
        test = (f"env PYTHONPATH={clone.parent / 'src'} REGBENCH_DATA_DIR={data} {threads}{bin_dir / 'python'} "
                f"-m pytest -x -q -p no:cacheprovider {' '.join(MUTATION_TESTS)} "
                f"-k '({MUTATION_MODULES[module]}) and not golden'")
        plan.append((clone, *prepare_mutants(session, clone, work / Path(module).stem, module, test, options)))

    def run_lane(lane: int) -> None:
        for clone, config, db in plan[lane::len(lanes)]:  # cwd per subprocess: threads must not chdir
            subprocess.run([str(Path(session.bin) / "cosmic-ray"), "exec", config, db], cwd=clone, check=True)

    with ThreadPoolExecutor(len(lanes)) as pool:
        list(pool.map(run_lane, range(len(lanes))))  # list(): re-raise a lane's failure
    head = session.run("git", "rev-parse", "--short", "HEAD", external=True, silent=True).strip()
    stamps = {module: (work / Path(module).stem).with_suffix(".stamp") for module in MUTATION_MODULES}
    current = [str(stamp.with_suffix(".sqlite")) for module, stamp in stamps.items()  # made from today's source
               if stamp.exists() and stamp.read_text() == mutation_stamp(ROOT / module, options)]
    header = (f"# Mutation scores of the method modules\n\nGenerated by `nox -s mutation -- --sample {options.sample} "
              f"--seed {options.seed}` (cosmic-ray 8.7.0) on code {head}. Tests: each module's own "
              "(noxfile.MUTATION_MODULES), golden files excluded. Mutants inside signature annotations are skipped as "
              "equivalent by construction (never evaluated under `from __future__ import annotations`); `run` are the "
              "sampled others. `killed` counts incompetent mutants (the tests cannot run against them). Survivors "
              "are judged in tests/mutation_equivalent.toml: `equivalent` (left out of the score), `golden only` "
              "(only the numbers change, e.g. a seed: the golden-loss files fail on them; counted as caught) or "
              "live. Score = (killed + golden only) / (killed + golden only + live), with its 95% Wilson interval "
              "(the sampling error of a sample).")
    session.run("python", "tests/mutation_tools.py", "report", *current, "--equivalent",
                "tests/mutation_equivalent.toml", "--header", header, "--out", "results/mutation.md")


def mutation_clone(session: nox.Session, work: Path, lane: int) -> Path:
    """A clone of HEAD at ``work/lane-N/clone`` (reset: no mutant left behind), linked as regbench/ under
    ``work/lane-N/src`` for PYTHONPATH."""
    clone, src = work / f"lane-{lane}" / "clone", work / f"lane-{lane}" / "src" / "regbench"
    if not clone.exists():
        session.run("git", "clone", "--quiet", str(ROOT), str(clone), external=True)
    session.run("git", "-C", str(clone), "fetch", "--quiet", str(ROOT), "HEAD", external=True)
    session.run("git", "-C", str(clone), "checkout", "--quiet", "--force", "FETCH_HEAD", external=True)
    src.mkdir(parents=True, exist_ok=True)
    for folder in ("harness", "benchmarks", "regularizers", "baselines"):
        if not (src / folder).exists():
            (src / folder).symlink_to(clone / folder)
    return clone


def mutation_stamp(module: Path, options: argparse.Namespace) -> str:
    """What a module's cosmic-ray session was made from: its source and the sampling seed."""
    return f"{hashlib.sha256(module.read_bytes()).hexdigest()[:16]} seed={options.seed}\n"


def prepare_mutants(session: nox.Session, clone: Path, base: Path, module: str, test: str,
                    options: argparse.Namespace) -> tuple[str, str]:
    """Init the module's cosmic-ray session unless one made from the same source and seed exists (checking the
    unmutated module passes its tests), forget the survivors' results with --retest-survivors, select the sample.
    Returns the config and database that ``cosmic-ray exec`` then runs in ``clone``."""
    config, db, stamp_file = base.with_suffix(".toml"), base.with_suffix(".sqlite"), base.with_suffix(".stamp")
    config.write_text(f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = 300.0\nexcluded-modules = []\n'
                      f'test-command = "{test}"\n\n[cosmic-ray.distributor]\nname = "local"\n')
    stamp, tools = mutation_stamp(clone / module, options), str(ROOT / "tests" / "mutation_tools.py")
    with session.chdir(clone):
        if not db.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
            db.unlink(missing_ok=True)
            session.run("cosmic-ray", "init", str(config), str(db))
            session.run("cosmic-ray", "baseline", str(config))
            stamp_file.write_text(stamp)
        elif options.retest_survivors:
            session.run("python", tools, "retest", str(db))
        session.run("python", tools, "select", str(db), module, "--keep", str(options.sample),
                    "--seed", str(options.seed))
    return str(config), str(db)


CODE = ["harness", "benchmarks", "regularizers", "baselines"]


@nox.session
def lint(session: nox.Session) -> None:
    """``ruff check`` over the code folders and tests: pyflakes, pycodestyle (E/W, lines ≤ 120), isort, bugbear,
    pyupgrade, simplify ([tool.ruff] in pyproject.toml). Not ``ruff format``: its layout is not this code base's."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", *CODE, "tests", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over the code folders ([tool.mypy] in pyproject.toml), against the shared environment's packages (torch,
    transformers, optuna, …). The installed regbench maps the folders with an import hook that mypy cannot follow,
    so they are linked under .nox/typecheck-src/regbench/ and checked as ``regbench.*``. Arguments replace the
    packages (``nox -s typecheck -- -p regbench.harness``). Clean, and run in CI (.ci/run): a method names its config
    type as ``Method[ItsConfig]`` so that ``self.config``'s fields are checked."""
    session.install("mypy==2.4.1")
    bin_dir = shared_env(session)
    src = ROOT / ".nox" / "typecheck-src"
    (src / "regbench").mkdir(parents=True, exist_ok=True)
    for folder in CODE:
        if not (src / "regbench" / folder).exists():
            (src / "regbench" / folder).symlink_to(ROOT / folder)
    packages = session.posargs or [arg for folder in CODE for arg in ("-p", f"regbench.{folder}")]
    session.run("mypy", "--python-executable", str(bin_dir / "python"), *packages, env={"MYPYPATH": str(src)})

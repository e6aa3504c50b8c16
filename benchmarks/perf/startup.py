"""Start-up cost of the ``regbench`` command: this checkout against an earlier commit, each command a fresh process.

    python benchmarks/perf/startup.py [--repeats 3] [--base COMMIT] [--after COMMIT]      (or: nox -s perf)

Issue 19 (item 6) moved heavy imports to where they are used: listings read YAML and source files without torch,
transformers, datasets or optuna; MLflow loads when a run tracks; scoring calls scikit-learn, SciPy and seqeval
directly (``evaluate``, which imports transformers' pipelines, only for its own interface). This times
``regbench --help``, ``regbench ls methods``, ``regbench ls tasks`` and a tiny-model ``regbench run`` (the README's
command with ``--model tiny-random-bert``, once with ``--no-track`` and once tracking to a fresh SQLite store), and
the imports of such a run alone, for the checkout and for ``--base`` (default: the commit before that change;
``--after`` measures a commit instead of the checkout). Commits are checked out with ``git worktree add`` into a
temporary directory, and each version is imported through a ``PYTHONPATH`` directory whose ``regbench/<package>``
entries link to its tree, so the same interpreter and packages run both. Commands and versions are interleaved
(the order of the two versions alternates between repeats) and medians are reported, as wall seconds and as CPU
seconds (user + system of the process and its children): the CPU time depends much less than the wall time on
what else the machine runs. The two versions' run records must carry the same metrics and predictions. Writes
``results/perf/startup.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_COMMIT = "7897162"  # the commit before issue 19 items 5 (metrics table) and 6 (start-up)
PACKAGES = ("harness", "benchmarks", "regularizers", "baselines")
CLI = "import sys; from regbench.harness.cli import main; sys.exit(main(sys.argv[1:]))"
RUN = ["run", "--task", "sst2", "--method", "std", "--model", "tiny-random-bert", "--train-size", "64", "--epochs", "3",
       "--seed", "1"]
# Python arguments of each timed process: the regbench command line, or (last row) only the imports a run makes
# before its first step (`regbench run` imports harness.api), which shows what the run's total is made of.
COMMANDS = {
    "regbench --help": ["-c", CLI, "--help"],
    "regbench ls methods": ["-c", CLI, "ls", "methods"],
    "regbench ls tasks": ["-c", CLI, "ls", "tasks"],
    "regbench run (tiny model, --no-track)": ["-c", CLI, *RUN, "--no-track"],
    "regbench run (tiny model, MLflow on)": ["-c", CLI, *RUN],
    "import regbench.harness.api (a run's imports)": ["-c", "import regbench.harness.cli, regbench.harness.api"],
}


def import_dir(tree: Path, where: Path) -> Path:
    """A PYTHONPATH directory whose ``regbench`` package is ``tree``'s four code folders."""
    package = where / "regbench"
    package.mkdir(parents=True)
    for name in PACKAGES:
        (package / name).symlink_to(tree / name, target_is_directory=True)
    return where


def time_command(args: list[str], tree: Path, path_dir: Path, out: Path | None) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh Python process with ``args``, run from ``tree``."""
    # The earlier tree lives in a temporary directory, where the default data dir (../shared/data) is not. One torch
    # thread: on a loaded machine, idle OpenMP threads spin, and CPU time would count their waiting.
    env = {"REGBENCH_DATA_DIR": str(ROOT.parent / "shared" / "data"), **os.environ, "PYTHONPATH": str(path_dir),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if out is not None:
        args = [*args, "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_results(out: Path) -> list[tuple]:
    """What a run's record says about results (not timings): metrics and test predictions."""
    found = []
    for path in sorted(out.rglob("*.json")):
        record = json.loads(path.read_text())
        if "run_info" in record:
            found.append((record["metrics"], record.get("predictions")))
    return found


def measure(trees: dict[str, Path], dirs: dict[str, Path], repeats: int, tmp: Path) -> tuple[dict, bool | None]:
    """samples[command][version] = [(wall, cpu), ...]; and whether both versions' runs gave the same results (None:
    no run was timed)."""
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {c: {v: [] for v in trees} for c in COMMANDS}
    results: dict[str, list] = {v: [] for v in trees}
    for repeat in range(repeats):
        order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
        for command, args in COMMANDS.items():
            for version in order:
                out = tmp / f"{version}-{repeat}-{len(samples[command][version])}" if "run" in args else None
                samples[command][version].append(time_command(args, trees[version], dirs[version], out))
                if out is not None:
                    results[version].extend(run_results(out))
                wall, cpu = samples[command][version][-1]
                print(f"repeat {repeat + 1}/{repeats} {command} [{version}]: {wall:.2f} s wall, {cpu:.2f} s CPU",
                      flush=True)
    first, second = results.values()
    return samples, (first == second) if first or second else None


def write_report(samples: dict, same: bool | None, args: argparse.Namespace, labels: dict[str, str],
                 load: tuple[float, float]) -> None:
    rows = []
    for command, by_version in samples.items():
        cells = []
        for kind in (0, 1):  # wall, CPU
            before, after = (statistics.median(s[kind] for s in by_version[v]) for v in ("before", "after"))
            cells.append(f"{before:.2f} | {after:.2f} | {after / before:.2f}×")
        walls = "; ".join(f"{v}: {', '.join(f'{s[0]:.2f}' for s in by_version[v])}" for v in ("before", "after"))
        rows.append(f"| {command} | {' | '.join(cells)} | {walls} |")
    command = f"python benchmarks/perf/startup.py --repeats {args.repeats} --base {args.base}"
    command += f" --after {args.after}" if args.after else ""
    text = f"""# Start-up time of the `regbench` command

Generated by `{command}` (`nox -s perf`).

Machine: {platform.platform()}, {os.cpu_count()} CPUs; load average {load[0]:.1f} at the start, {load[1]:.1f} at the
end. *before* = {labels["before"]} (imports everything at start-up); *after* = {labels["after"]}. Each command is a
fresh process with one torch thread; commands and versions interleaved; median of {args.repeats} repeats. Wall
seconds depend on what else the machine runs (other processes make them noisy and slow); CPU seconds — user +
system of the process and its children — much less. The run is `regbench {' '.join(RUN)}` into a fresh output
directory; like every run by default it also scores three OOD sets and the collapse probes after training. The
last row times only the imports such a run makes before its first step.

| command | wall before | wall after | ratio | CPU before | CPU after | ratio | wall samples |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(rows)}

{_verdict(same)}

Reading: the listings no longer import torch, transformers, datasets or optuna. A run's imports before its first
step (last row) shrink by more than the run does: building the model imports most of what `evaluate` used to pull in
at start-up (transformers' modelling code), scoring imports scikit-learn and SciPy, and a tracked run still imports
MLflow; what a run saves is `evaluate`'s own share and, with `--no-track`, MLflow.
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


def _verdict(same: bool | None) -> str:
    if same is None:
        return "No run was timed."
    carry = "the same" if same else "DIFFERENT"
    return f"The before and after runs' records carry {carry} metrics and test predictions."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", default=BASE_COMMIT, help="the commit to compare with (default: before the change)")
    parser.add_argument("--after", help="a commit to measure instead of this checkout's working tree")
    parser.add_argument("--out", default=str(ROOT / "results/perf/startup.md"))
    args, _ = parser.parse_known_args()  # nox -s perf passes its arguments to every script
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as cleanup:
        tmp = Path(name)
        trees = {"before": worktree(args.base, tmp / "before", cleanup),
                 "after": worktree(args.after, tmp / "after", cleanup) if args.after else ROOT}
        dirs = {version: import_dir(tree, tmp / f"path-{version}") for version, tree in trees.items()}
        samples, same = measure(trees, dirs, args.repeats, tmp)
    labels = {"before": short(args.base), "after": short(args.after) if args.after else "this checkout"}
    write_report(samples, same, args, labels, (load_start, os.getloadavg()[0]))


def short(commit: str) -> str:
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{commit}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:  # a shallow clone or an export without history
        raise SystemExit(f"startup.py: commit {commit} is not in this checkout's history; fetch it or pass --base")
    return found.stdout.strip()


def worktree(commit: str, where: Path, cleanup: contextlib.ExitStack) -> Path:
    """A detached checkout of ``commit`` at ``where``, removed when ``cleanup`` closes."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), short(commit)], check=True)
    cleanup.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False)
    return where


if __name__ == "__main__":
    main()

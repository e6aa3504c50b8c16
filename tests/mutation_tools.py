"""Helpers of ``nox -s mutation`` over cosmic-ray session databases (run by the mutation session's Python, where
cosmic-ray is installed; not collected by pytest).

    python tests/mutation_tools.py select DB MODULE --keep 30 --seed 0
    python tests/mutation_tools.py retest DB
    python tests/mutation_tools.py report DB [DB ...] --equivalent tests/mutation_equivalent.toml --out FILE

``select`` marks skipped the mutants inside function signatures' annotations (the method modules import
``annotations`` from ``__future__``: those strings are never evaluated, so each such mutant is equivalent by
construction; class-level annotations stay, pydantic reads them), then keeps a seeded random sample of the rest, so a
module with hundreds of mutants costs tens of test runs: its score is an estimate, reported with its Wilson interval.
``retest`` forgets the survivors' results so the next run tests them again (after tests were added).
``report`` writes the per-module table (mutants, sampled, killed, survived, score over the non-equivalent mutants)
and lists every survivor with its diff and, for those judged equivalent in the TOML file, why.
"""

from __future__ import annotations

import argparse
import ast
import math
import random
import sqlite3
import sys
import tomllib
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkItem, WorkResult

Z95 = 1.959963984540054  # two-sided 95% normal quantile, for the Wilson interval
IN_ANNOTATION = "in a signature annotation: never evaluated, equivalent by construction"


def mutation_key(item: WorkItem) -> tuple[str, str, int]:
    """(module, operator, occurrence): cosmic-ray's own identity of a mutant, stable while the source is."""
    spec = item.mutations[0]
    return (spec.module_path.as_posix(), spec.operator_name, spec.occurrence)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, as (line, character column), of every annotation of a function's parameters or return
    value and of annotated assignments inside function bodies: strings under ``from __future__ import annotations``."""
    tree, lines = ast.parse(source), source.splitlines()

    def position(line: int, byte_column: int) -> tuple[int, int]:  # ast counts UTF-8 bytes, cosmic-ray characters
        return (line, len(lines[line - 1].encode()[:byte_column].decode(errors="ignore")))

    annotations = []
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)):
        arguments = function.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        annotations += [argument.annotation for argument in every if argument is not None and argument.annotation]
        annotations += [function.returns] if function.returns else []
        annotations += [node.annotation for node in ast.walk(function) if isinstance(node, ast.AnnAssign)]
    return [(position(node.lineno, node.col_offset), position(node.end_lineno or node.lineno, node.end_col_offset or 0))
            for node in annotations]


def select(db_path: Path, module: Path, keep: int, seed: int) -> None:
    """Skip the mutants inside signature annotations; of the others keep the first ``keep`` of a seeded shuffle
    (0: all) and skip the rest. The shuffle orders mutants by their key, so it does not depend on cosmic-ray's random
    job ids, and a larger ``keep`` with the same seed extends the sample: mutants already run keep their results."""
    source = module.read_text(encoding="utf-8")
    if "from __future__ import annotations" not in source:
        raise SystemExit(f"{module}: annotations are evaluated without the __future__ import; select needs it")
    spans = annotation_spans(source)
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        items, results = sorted(db.work_items, key=mutation_key), dict(db.results)
        inside = {item.job_id for item in items
                  if any(start <= tuple(item.mutations[0].start_pos) < end for start, end in spans)}
        rest = [item.job_id for item in items if item.job_id not in inside]
        random.Random(seed).shuffle(rest)
        kept = set(rest[:keep] if keep else rest)
        note = f"not in the seeded sample (--sample {keep} --seed {seed})"
        db.set_multiple_results([job for job in inside if job not in results],
                                WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=IN_ANNOTATION))
        db.set_multiple_results([job for job in rest if job not in kept and job not in results],
                                WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=note))
    newly_kept = [job for job in kept if job in results and results[job].worker_outcome == WorkerOutcome.SKIPPED]
    forget(db_path, newly_kept)


def forget(db_path: Path, job_ids: list[str]) -> None:
    """Remove results so ``cosmic-ray exec`` runs those mutants (again). cosmic-ray's API can set a result but not
    remove one; ``work_results`` is its session table."""
    with sqlite3.connect(db_path) as connection:
        connection.executemany("DELETE FROM work_results WHERE job_id = ?", [(job,) for job in job_ids])


def retest(db_path: Path) -> None:
    """Forget the survivors' results so the next run tests them again (after tests were added)."""
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        survivors = [job for job, result in db.results if result.test_outcome == TestOutcome.SURVIVED]
    forget(db_path, survivors)


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (it stays inside [0, 1] for the small samples used here)."""
    if trials == 0:
        return (math.nan, math.nan)
    share = successes / trials
    centre = (share + Z95**2 / (2 * trials)) / (1 + Z95**2 / trials)
    half = Z95 * math.sqrt(share * (1 - share) / trials + Z95**2 / (4 * trials**2)) / (1 + Z95**2 / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_equivalent(path: Path | None) -> dict[tuple[str, str, int], tuple[str, str]]:
    """Survivors judged by reading the code: key → (verdict, reason). ``verdict`` is "equivalent" (no input the
    method can receive tells the mutant apart; left out of the score) or "golden" (only the numbers change, e.g. a
    seed: the golden-loss files, excluded from this check by design, fail on it; counted as killed)."""
    if path is None or not path.exists():
        return {}
    tables = tomllib.loads(path.read_text(encoding="utf-8")).get("equivalent", [])
    return {(entry["module"], entry["operator"], int(entry["occurrence"])): (entry.get("verdict", "equivalent"),
                                                                              entry["why"]) for entry in tables}


def module_outcomes(db_path: Path) -> tuple[list[WorkItem], dict[str, WorkResult]]:
    with use_db(str(db_path), WorkDB.Mode.open) as db:
        return sorted(db.work_items, key=mutation_key), dict(db.results)


def summarise(items: list[WorkItem], results: dict[str, WorkResult], equivalent: dict) -> dict:
    """Counts of one module: run = sampled and finished; killed includes incompetent mutants (cosmic-ray's rule:
    a mutant the tests cannot even run against is not one they let through)."""
    done = [results[item.job_id] for item in items if item.job_id in results]
    run = [item for item in items if item.job_id in results
           and results[item.job_id].worker_outcome != WorkerOutcome.SKIPPED]
    survived = [item for item in run if results[item.job_id].test_outcome == TestOutcome.SURVIVED]
    verdicts = [equivalent.get(mutation_key(item), ("live", ""))[0] for item in survived]
    return {"mutants": len(items), "annotation": sum(result.output == IN_ANNOTATION for result in done),
            "run": len(run), "pending": len(items) - len(done), "killed": len(run) - len(survived),
            "incompetent": sum(results[item.job_id].test_outcome == TestOutcome.INCOMPETENT for item in run),
            "survived": survived, "equivalent": verdicts.count("equivalent"), "golden": verdicts.count("golden"),
            "live": verdicts.count("live")}


def table_row(module: str, counts: dict) -> str:
    caught, live = counts["killed"] + counts["golden"], counts["live"]
    low, high = wilson(caught, caught + live)
    score = f"{100 * caught / (caught + live):.0f}%" if caught + live else "–"
    interval = f"{100 * low:.0f}–{100 * high:.0f}%" if caught + live else "–"
    return (f"| {module} | {counts['mutants']} | {counts['annotation']} | {counts['run']} | {counts['pending']} "
            f"| {counts['killed']} | {len(counts['survived'])} | {counts['equivalent']} | {counts['golden']} "
            f"| {live} | {score} | {interval} |")


def survivor_lines(items: list[WorkItem], results: dict[str, WorkResult], equivalent: dict) -> list[str]:
    lines = []
    for item in items:
        key = mutation_key(item)
        spec = item.mutations[0]
        verdict = "{}: {}".format(*equivalent[key]) if key in equivalent else "**live: not killed**"
        changed = [line for line in (results[item.job_id].diff or "").splitlines()
                   if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        lines.append(f"- `{key[0]}:{spec.start_pos[0]}` {key[1]} #{key[2]} — {verdict}")
        lines += [f"  `{line.strip()}`" for line in changed]
    return lines


def report(db_paths: list[Path], equivalent_path: Path | None, header: str) -> str:
    equivalent = load_equivalent(equivalent_path)
    rows, survivors = [], []
    for db_path in db_paths:
        items, results = module_outcomes(db_path)
        if not items:
            continue
        counts = summarise(items, results, equivalent)
        rows.append(table_row(mutation_key(items[0])[0], counts))
        survivors += survivor_lines(counts["survived"], results, equivalent)
    head = ["| module | mutants | in annotations | run | pending | killed | survived | equivalent | golden only "
            "| live survivors | score | 95% interval |", "|" + "---|" * 12]
    return "\n".join([header, "", *head, *rows, "", "## Survivors", "", *(survivors or ["None."]), ""])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    selector = commands.add_parser("select", help="skip annotation mutants, keep a seeded sample of the rest")
    selector.add_argument("db", type=Path)
    selector.add_argument("module", type=Path)
    selector.add_argument("--keep", type=int, default=0)
    selector.add_argument("--seed", type=int, default=0)
    retester = commands.add_parser("retest", help="forget the survivors' results, to test them again")
    retester.add_argument("db", type=Path)
    reporter = commands.add_parser("report", help="write the per-module mutation table")
    reporter.add_argument("dbs", type=Path, nargs="+")
    reporter.add_argument("--equivalent", type=Path)
    reporter.add_argument("--header", default="# Mutation scores")
    reporter.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "select":
        select(args.db, args.module, args.keep, args.seed)
    elif args.command == "retest":
        retest(args.db)
    else:
        args.out.write_text(report(args.dbs, args.equivalent, args.header), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

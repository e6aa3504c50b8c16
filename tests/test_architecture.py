"""The architecture the code claims (harness/README.md), checked from the source: the units of the code import each
other without a cycle, ``harness.core`` depends on nothing else of regbench, and no file or function outgrows the
size a reader can hold (350 lines a file, 60 a function). Imports inside functions and under TYPE_CHECKING count:
a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("harness", "benchmarks", "regularizers", "baselines")
HARNESS_UNITS = ("core", "run", "post", "io", "grid", "testing", "leaderboard")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 350, 60


def _modules() -> dict[str, Path]:
    found = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = ["regbench", *path.relative_to(ROOT).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def unit(module: str) -> str:
    """The unit a module belongs to: a harness sub-package, a top-level harness module, a benchmark client (perf),
    or a whole code folder."""
    parts = module.split(".")
    if parts[1] == "harness":
        if len(parts) == 2:
            return "harness"
        return f"harness.{parts[2]}"
    if parts[1] == "benchmarks" and len(parts) > 2 and parts[2] == "perf":
        return "benchmarks.perf"
    return parts[1]


def _imported(module: str, path: Path) -> set[str]:
    """Every regbench module ``module`` imports (at any depth of its code)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return {name for name in found if name.startswith("regbench.")}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(unit(module), set())
        edges |= {unit(target) for target in _imported(module, path)} - {unit(module)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_units_of_the_code_import_each_other_without_a_cycle():
    graph = unit_graph()
    assert {f"harness.{name}" for name in HARNESS_UNITS} <= set(graph)
    assert _cycle(graph) is None, " → ".join(_cycle(graph))


def test_the_cycle_check_fails_on_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_core_depends_on_nothing_else_of_regbench_and_benchmarks_only_on_core():
    graph = unit_graph()
    assert graph["harness.core"] == set()
    assert graph["benchmarks"] <= {"harness.core"}, graph["benchmarks"]
    assert graph["harness.run"] <= {"harness.core", "benchmarks"}, graph["harness.run"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_files_and_functions_stay_readable(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"{MODULES[module]} has {len(text.splitlines())} lines"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{MODULES[module]}: {', '.join(long)}"

"""What is available — methods and profiles — read without importing the code that runs them (``regbench ls``).

A method module imports torch, transformers and optuna to define its hooks, seconds before a name could be printed
(results/perf/startup.md). A listing needs only each method's ``name`` and ``summary``, which every method states as
literal class attributes of a class decorated with ``@register_method``; this module reads them from the syntax
tree of every built-in method module and of every ``regbench.methods`` entry point's module. Where that reading is
not possible (a name computed at import, a summary inherited, a module without source) it falls back on the
registry itself, which imports every method: the listing is never incomplete, only slower. Once the registry is in
use in this process (a method registered in code, a run), the registry is what is listed. Profiles are YAML files
whose ``description`` is all a listing shows (``harness.grid.profiles`` validates them, and needs torch and optuna).
"""

from __future__ import annotations

import ast
import importlib.resources
import importlib.util
import pkgutil
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

from .core import yamlio
from .core.plugins import BUILTIN_METHOD_PACKAGES, ENTRY_POINT_GROUP
from .core.registry import canonical_name


def method_summaries() -> list[tuple[str, str]]:
    """``(canonical name, summary)`` of every registered method, sorted as the registry sorts them."""
    if "regbench.harness.run.method" not in sys.modules:
        static = static_summaries()
        if static is not None:
            return static
    from .run.method import METHODS

    return [(name, cls.summary) for name, cls in METHODS.items()]


def static_summaries() -> list[tuple[str, str]] | None:
    """The listing read from source alone, or None where some module's methods cannot be read that way."""
    found: dict[str, str] = {}
    for path in method_sources():
        if path is None:
            return None
        methods = read_methods(path.read_text(encoding="utf-8"))
        if methods is None:
            return None
        found.update((canonical_name(name), summary) for name, summary in methods)
    return sorted(found.items())


def method_sources() -> Iterator[Path | None]:
    """The source file of every module that registers methods: built-in modules first (in the order the registry
    imports them), then entry points; None for a module whose source is not a readable ``.py`` file."""
    for package in BUILTIN_METHOD_PACKAGES:
        spec = importlib.util.find_spec(package)
        directories = list(spec.submodule_search_locations or []) if spec is not None else []
        for info in sorted(pkgutil.iter_modules(directories), key=lambda m: m.name):
            path = Path(getattr(info.module_finder, "path", ""), f"{info.name}.py")
            if not info.name.startswith("_"):
                yield path if not info.ispkg and path.is_file() else None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = importlib.util.find_spec(ep.module)
        except (ImportError, ValueError):  # its package is broken: the registry's import reports how
            spec = None
        origin = Path(spec.origin) if spec is not None and spec.origin else None
        yield origin if origin is not None and origin.suffix == ".py" and origin.is_file() else None


def read_methods(source: str) -> list[tuple[str, str]] | None:
    """``(name, summary)`` of each ``@register_method`` class in a module's source; None when one of them does not
    state both as string literals in its own body."""
    methods = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any(_is_register(d) for d in node.decorator_list):
            values = _literal_attributes(node)
            if "name" not in values or "summary" not in values:
                return None
            methods.append((values["name"], values["summary"]))
    return methods


def _is_register(decorator: ast.expr) -> bool:
    name = decorator.attr if isinstance(decorator, ast.Attribute) else getattr(decorator, "id", None)
    return name == "register_method"


def _literal_attributes(node: ast.ClassDef) -> dict[str, str]:
    values = {}
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                values[target.id] = value.value
    return values


def profiles_dir() -> Path:
    return Path(str(importlib.resources.files("regbench.benchmarks") / "profiles"))


def list_profiles() -> list[tuple[str, str]]:
    """(name, one-line description) of every profile shipped with regbench."""
    out = []
    for path in sorted(profiles_dir().glob("*.yaml")):
        data = yamlio.load(path) or {}
        out.append((path.stem, str(data.get("description", ""))))
    return out

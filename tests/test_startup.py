"""Start-up: heavy libraries load where they are used (issue 19, item 6; timings in results/perf/startup.md).

Each check runs in a fresh interpreter, because this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint

import pytest

from regbench.harness import catalogue
from regbench.harness.run.method import METHODS

HEAVY = ("torch", "transformers", "datasets", "mlflow", "optuna", "evaluate", "sklearn", "scipy", "pandas")


def imported_after(code: str) -> set[str]:
    """Top-level names of the modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert imported_after("import regbench.harness.cli") & set(HEAVY) == set()


@pytest.mark.parametrize("argv", [["ls", "methods"], ["ls", "tasks"], ["ls", "profiles"]])
def test_listings_load_no_heavy_library(argv: list[str]) -> None:
    code = f"from regbench.harness.cli import main\nassert main({argv!r}) == 0"
    assert imported_after(code) & set(HEAVY) == set()


def test_scoring_loads_neither_evaluate_nor_mlflow() -> None:
    code = ("from regbench.benchmarks.metrics import compute_metrics\n"
            "compute_metrics(['accuracy', 'f1', 'matthews_correlation'], [0, 1, 1], [0, 1, 0])\n"
            "compute_metrics(['pearsonr', 'spearmanr'], [0.1, 0.5, 0.3], [0.0, 1.0, 0.5])\n"
            "compute_metrics(['seqeval', 'token_accuracy'], [['B-PER', 'O']], [['B-PER', 'O']])")
    assert imported_after(code) & {"evaluate", "mlflow", "optuna", "torch"} == set()


def test_tracking_imports_mlflow_on_first_use() -> None:
    assert "mlflow" not in imported_after("import regbench.harness.io.tracking")
    assert "mlflow" in imported_after("from regbench.harness.io import tracking\ntracking.RunTracker")


def test_unknown_tracking_attribute_is_an_attribute_error() -> None:
    from regbench.harness.io import tracking

    with pytest.raises(AttributeError, match="no attribute 'RunTrackr'"):
        tracking.RunTrackr  # noqa: B018


def test_listing_read_from_source_matches_the_registry() -> None:
    assert catalogue.static_summaries() == [(name, cls.summary) for name, cls in METHODS.items()]


def test_entry_point_methods_are_listed_without_importing_them(tmp_path, monkeypatch) -> None:
    (tmp_path / "third_party_method.py").write_text(textwrap.dedent('''
        from regbench.harness.run.method import Method, register_method

        @register_method
        class Mine(Method):
            name = "My-Method"
            summary = "a third-party method"
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("my-method", "third_party_method:Mine", catalogue.ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalogue, "entry_points", lambda group: [point] if group == point.group else [])
    listed = dict(catalogue.static_summaries() or [])
    assert listed["my_method"] == "a third-party method" and "std" in listed
    assert "third_party_method" not in sys.modules


@pytest.mark.parametrize("body", [
    'name = "x"',  # no summary of its own (inherited)
    'name = PREFIX + "x"\n    summary = "s"',  # a computed name
])
def test_a_method_that_cannot_be_read_statically_sends_the_listing_to_the_registry(body: str) -> None:
    source = f"@register_method\nclass M(Method):\n    {body}\n"
    assert catalogue.read_methods(source) is None


def test_undecorated_classes_are_not_methods() -> None:
    source = 'class Helper:\n    name = "helper"\n    summary = "not a method"\n'
    assert catalogue.read_methods(source) == []


def test_an_entry_point_without_readable_source_sends_the_listing_to_the_registry(monkeypatch) -> None:
    point = EntryPoint("gone", "no_such_package.method:Gone", catalogue.ENTRY_POINT_GROUP)
    monkeypatch.setattr(catalogue, "entry_points", lambda group: [point] if group == point.group else [])
    assert catalogue.static_summaries() is None

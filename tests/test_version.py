"""regbench's version comes from pyproject.toml alone; the licence file matches the licence pyproject declares."""

from __future__ import annotations

import tomllib
from pathlib import Path

from regbench.harness.core import version
from regbench.harness.io import records

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_version_is_pyprojects() -> None:
    assert version.__version__ == version.regbench_version() == PROJECT["version"]


def test_records_store_the_same_version() -> None:
    meta = records.collect_provenance(model_name="m", model_checksum=None, data_files=[], device="cpu")
    assert meta["regbench_version"] == version.__version__


def test_source_tree_fallback(monkeypatch) -> None:
    monkeypatch.setattr(version, "package_version", lambda package: None)
    assert version.regbench_version() == PROJECT["version"]
    monkeypatch.setattr(version, "PYPROJECT", ROOT / "no-such-pyproject.toml")
    assert version.regbench_version() == "unknown"


def test_licence_file_matches_pyproject() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "Copyright 2026 The regbench authors" in text


def test_the_cli_and_the_package_say_the_version(capsys) -> None:
    import pytest

    from regbench import harness
    from regbench.harness.cli import main

    assert harness.__version__ == PROJECT["version"]
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"regbench {PROJECT['version']}\n"


def test_the_top_level_package_says_the_version() -> None:
    """``import regbench; regbench.__version__``: the top package is a regular one (pyproject maps it to
    harness/_regbench), not a bare namespace over the four folders."""
    import regbench

    assert regbench.__version__ == PROJECT["version"]
    assert regbench.__file__ is not None  # a namespace package has no file (and no version)

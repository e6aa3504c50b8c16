"""Every published leaderboard (results/<profile>/leaderboard.*) is current with the records beside it: rebuilt
from them with the command it states, its tables are the committed bytes. A record added, a statistic changed or a
caption edited without regenerating fails here, not in a reader's hands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from regbench.harness.leaderboard import build_leaderboard

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted(p.parent for p in (ROOT / "results").glob("*/leaderboard.md"))
TABLES = ("leaderboard.md", "leaderboard.tex", "leaderboard.csv", "leaderboard_overall.csv")


@pytest.mark.slow
@pytest.mark.parametrize("published", PUBLISHED, ids=lambda p: p.name)
def test_published_leaderboard_tables_are_current_with_their_records(published: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    command = re.search(r"^- Regenerate: `([^`]+)`$", (published / "leaderboard.md").read_text(), re.M)
    assert command, f"{published.name}/leaderboard.md does not state the command that regenerates it"
    assert command[1] == f"regbench leaderboard --profile {published.name}", (
        "a published leaderboard is built from the records beside it, with `regbench leaderboard --profile <name>`")
    monkeypatch.chdir(ROOT)  # the records are named relative to the repository, as the command reads them
    build_leaderboard(Path("results", published.name, "records"), tmp_path, published.name,
                      cells_dir=Path("results", published.name, "cells"), command=command[1])
    for name in TABLES:
        assert (tmp_path / name).read_bytes() == (published / name).read_bytes(), (
            f"results/{published.name}/{name} is out of date: run {command[1]}")


def test_a_published_leaderboard_exists() -> None:
    """The parametrised test above must not pass vacuously over no leaderboard at all."""
    assert any(p.name == "quick" for p in PUBLISHED)

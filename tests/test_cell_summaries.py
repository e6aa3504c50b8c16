"""Cell summaries' path and reader (harness/io/cell_summaries.py): committed grids are found at this path, and
status, the leaderboard and the grid's table read through this one reader."""

from __future__ import annotations

import json
from pathlib import Path

from regbench.harness.io.cell_summaries import cell_summary_path, read_cell_summaries


def test_the_path_is_the_committed_layout(tmp_path: Path) -> None:
    """results/<profile>/cells/<task>/<method with + as p>/<cell key>.json: every committed grid is laid out so."""
    assert cell_summary_path(tmp_path, "cr", "mvcr+mixout", "0b5c74ce623175a9") == (
        tmp_path / "cells" / "cr" / "mvcrpmixout" / "0b5c74ce623175a9.json")
    committed = Path(__file__).resolve().parents[1] / "results" / "quick" / "cells"
    for path, cell in read_cell_summaries(committed):
        assert isinstance(cell, dict)
        assert path == cell_summary_path(committed.parent, cell["task"], cell["method"], cell["cell_key"])


def test_reader_yields_each_file_in_order_with_its_object_or_error(tmp_path: Path) -> None:
    good = cell_summary_path(tmp_path, "trec", "std", "b")
    good.parent.mkdir(parents=True)
    good.write_text(json.dumps({"cell_key": "b"}))
    (good.parent / "a.json").write_text("{")  # being rewritten
    (good.parent / "c.json").write_text("[1]")  # not an object
    (good.parent / "notes.txt").write_text("not a summary")
    found = list(read_cell_summaries(tmp_path / "cells"))
    assert [p.name for p, _ in found] == ["a.json", "b.json", "c.json"]
    assert isinstance(found[0][1], ValueError) and found[1][1] == {"cell_key": "b"}
    assert isinstance(found[2][1], TypeError) and "not an object" in str(found[2][1])
    assert list(read_cell_summaries(tmp_path / "nowhere")) == [] and list(read_cell_summaries(None)) == []

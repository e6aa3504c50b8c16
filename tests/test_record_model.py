"""The typed record model (harness/io/record_model.py): its published JSON Schema is current, every committed record
loads through it, and a version-1 record (top-level ``collapse``) loads with the same values as its version-2 form."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from leaderboard_synth import make_record, write

from regbench.harness.core.errors import RegbenchError
from regbench.harness.io import record_model, records
from regbench.harness.leaderboard.loading import load_runs

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(p for p in (ROOT / "results").glob("*/records/**/*")
                   if p.name.endswith((".json", ".json.gz")) and not p.name.startswith(".tmp-") and p.is_file())
COLLAPSE = {"cka": 0.8, "effective_rank": 31.5, "probe_rows": 64.0, "probe_transfer_delta": -0.02}


def _as_version_1(record: dict) -> dict:
    """What the harness wrote before schema version 2: collapse at the top level, version 1 in both places."""
    old = copy.deepcopy(record)
    old["collapse"] = old["metrics"].pop("collapse", None)
    old["schema_version"] = old["meta_info"]["schema_version"] = 1
    return old


def test_the_committed_json_schema_is_current() -> None:
    path = ROOT / record_model.SCHEMA_FILE
    assert path.is_file(), f"{path} is missing: run python -m regbench.harness.io.record_model"
    assert path.read_text(encoding="utf-8") == record_model.schema_text(), (
        f"{path} is stale (the record model changed): run python -m regbench.harness.io.record_model and commit it")


def test_schema_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "record.schema.json"
    assert record_model.main([str(path), "--check"]) == 1
    assert record_model.main([str(path)]) == 0 and record_model.main([str(path), "--check"]) == 0
    schema = json.loads(path.read_text())
    assert schema["properties"]["schema_version"]["const"] == records.SCHEMA_VERSION == 2
    assert "collapse" not in schema["properties"] and "collapse" in schema["$defs"]["Metrics"]["properties"]
    assert schema["additionalProperties"] is False and schema["$defs"]["RunInfo"]["additionalProperties"] is True
    path.write_text(path.read_text().replace("collapse", "kollapse"))
    assert record_model.main([str(path), "--check"]) == 1
    assert "stale" in capsys.readouterr().out


@pytest.mark.skipif(not COMMITTED, reason="no committed records under results/*/records")
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_every_committed_record_loads_with_its_values(path: Path) -> None:
    raw = json.loads(gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes())
    loaded = records.validate_record(raw).to_dict()
    if raw["schema_version"] == 1:  # the upgrade moves collapse and nothing else
        raw["metrics"] = {**raw["metrics"], **({"collapse": raw.pop("collapse")} if "collapse" in raw else {})}
        raw["schema_version"] = 2
    assert loaded == raw


def test_version_1_and_version_2_records_load_the_same_values(tmp_path: Path) -> None:
    new = [make_record("sst2", method, seed, 0.6 + seed / 100, collapse={**COLLAPSE, "cka": 0.5 + seed / 10},
                       ood={"imdb": 0.7}) for method in ("std", "repina_i") for seed in (1, 2, 3)]
    old = [_as_version_1(r) for r in new]
    for v2, v1 in zip(new, old, strict=True):
        assert v2["schema_version"] == 2 and v1["schema_version"] == 1 and "collapse" in v1
        a, b = records.validate_record(v2).to_dict(), records.validate_record(v1).to_dict()
        assert record_model.RunRecord.model_validate(v1).to_dict() == b  # the model itself upgrades
        assert b["meta_info"].pop("schema_version") == 1 and a["meta_info"].pop("schema_version") == 2
        assert a == b
        write(tmp_path / "v2", v2)
        write(tmp_path / "v1", v1)
    runs_v2, runs_v1 = load_runs(tmp_path / "v2").runs, load_runs(tmp_path / "v1").runs
    assert runs_v2["collapse.cka"].notna().all() and runs_v2["ood.imdb"].notna().all()
    pd.testing.assert_frame_equal(runs_v2, runs_v1)


@pytest.mark.parametrize("top, written", [(2, 1), (1, 2)])
def test_a_record_stating_two_versions_is_refused(top: int, written: int) -> None:
    record = make_record("sst2", "std", 1, 0.7)
    record["schema_version"], record["meta_info"]["schema_version"] = top, written
    message = f"schema_version {top} but meta_info.schema_version {written}"
    with pytest.raises(RegbenchError, match=re.escape(message)):
        records.validate_record(record)


def test_build_record_returns_exactly_what_it_was_given() -> None:
    record = make_record("sst2", "std", 1, 0.7, collapse=COLLAPSE)
    assert record["metrics"]["collapse"] == {"metrics": COLLAPSE, "settings": {}}
    assert records.validate_record(record).to_dict() == record
    assert set(record["train_info"]) == {"dev_curve", "best_epoch", "wall_seconds", "steps"}  # no defaults filled in
    assert isinstance(record["train_info"]["steps"], int)  # ints stay ints: byte-identical files


def test_in_process_annotations_are_dropped_and_bad_values_named() -> None:
    record = make_record("sst2", "std", 1, 0.7)
    assert "_path" not in records.validate_record({**record, "_path": "x"}).to_dict()
    for edit, message in [
        (lambda r: r["run_info"].update(seed=1.0), "record run_info.seed must be an integer, got '1.0'"),
        (lambda r: r["metrics"].update(extra={}), "record has an unknown field metrics.extra"),
        (lambda r: r["train_info"].update(best_epoch="2"), "record train_info.best_epoch must be an integer or null"),
        (lambda r: r.update(predictions={"kind": "probs", "ids": [], "pred": []}),
         "record predictions.kind must be one of label, value, tags"),
    ]:
        bad = copy.deepcopy(record)
        edit(bad)
        with pytest.raises(RegbenchError, match=re.escape(message)) as err:
            records.validate_record(bad)
        assert "\n" not in str(err.value)

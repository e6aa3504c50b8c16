"""Result records: validation, atomic immutable writes, byte-stable round trips, provenance."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from regbench.harness.core.errors import RegbenchError
from regbench.harness.io import records


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.parquet"
    path.parent.mkdir()
    path.write_bytes(os.urandom(3 << 20) + b"tail")  # > 1 MiB: several chunks
    return path


@pytest.fixture
def record(data_file: Path) -> dict:
    meta = records.collect_provenance(model_name="tiny-random-bert", model_checksum="abc123", data_files=[data_file],
                                      device="cpu", extra={"profile": "smoke"})
    return records.build_record(
        run_info={"run_id": "k1", "task": "rte", "method": "std", "seed": 3, "status": "ok", "size": "k16",
                  "noise": {"type": "none", "rate": 0.0},
                  "config": {"method": {"name": "std", "params": {}}, "lr": 2e-5}, "error": None},
        train_info={"dev_curve": [{"epoch": 1, "dev_primary": 0.5}, {"epoch": 2, "dev_primary": 0.625}],
                    "best_epoch": 2, "epoch_losses": [{"loss/task": 0.69}, {"loss/task": 0.61}]},
        metrics={"test": {"accuracy": 0.6, "primary": 0.6}, "dev": {"primary": 0.625}},
        predictions=records.compact_predictions([0, 1, 2], [1, 0, 1], "label"),
        meta_info=meta)


def _temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("name", ["run.json", "run.json.gz"])
def test_round_trip_gives_the_same_dict(tmp_path: Path, record: dict, name: str) -> None:
    path = records.write_record(tmp_path / "deep" / "er" / name, record)
    assert path.is_file()
    assert records.read_record(path) == record
    if name.endswith(".gz"):
        assert gzip.decompress(path.read_bytes()).startswith(b"{")
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("name", ["run.json", "run.json.gz"])
def test_same_record_gives_byte_identical_files(tmp_path: Path, record: dict, name: str) -> None:
    first = records.write_record(tmp_path / "a" / name, record)
    second = records.write_record(tmp_path / "b" / name, dict(reversed(list(record.items()))))
    assert first.read_bytes() == second.read_bytes()


def test_nan_is_stored_and_read_back(tmp_path: Path, record: dict) -> None:
    record["metrics"]["test"]["pearson"] = float("nan")
    path = records.write_record(tmp_path / "nan.json", record)
    assert b"NaN" in path.read_bytes()
    assert math.isnan(records.read_record(path)["metrics"]["test"]["pearson"])


def test_in_process_annotations_are_not_stored(tmp_path: Path, record: dict) -> None:
    path = records.write_record(tmp_path / "r.json", {**record, "_path": "somewhere"})
    assert "_path" not in records.read_record(path)


def test_refuses_to_overwrite_unless_asked(tmp_path: Path, record: dict) -> None:
    path = records.write_record(tmp_path / "r.json", record)
    before = path.read_bytes()
    changed = {**record, "metrics": {"test": {"primary": 0.9}}}
    with pytest.raises(RegbenchError, match=re.escape(str(path))):
        records.write_record(path, changed)
    assert path.read_bytes() == before
    records.write_record(path, changed, overwrite=True)
    assert records.read_record(path)["metrics"]["test"]["primary"] == 0.9
    assert _temp_files(tmp_path) == []


def test_a_crash_before_the_rename_leaves_nothing(tmp_path: Path, record: dict, monkeypatch) -> None:
    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", crash)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        records.write_record(tmp_path / "out" / "r.json", record)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["run_info"].pop("status"), "record is missing run_info.status"),
    (lambda r: r.pop("train_info"), "record is missing train_info"),
    (lambda r: r["run_info"].update(status="done"), "record run_info.status must be one of ok, failed, diverged"),
    (lambda r: r["run_info"].update(seed="3"), "record run_info.seed must be an integer"),
    (lambda r: r["run_info"].update(seed=True), "record run_info.seed must be an integer"),
    (lambda r: r["train_info"]["dev_curve"].append({"epoch": 3}), "record train_info.dev_curve must be"),
    (lambda r: r["train_info"].update(best_epoch=1.5), "record train_info.best_epoch must be an integer or null"),
    (lambda r: r["metrics"].pop("test"), "record is missing metrics.test"),
    (lambda r: r["metrics"].update(test={"acc": "high"}), "record metrics.test must be null or an object"),
    (lambda r: r["meta_info"].update(schema_version=0), "record meta_info.schema_version must be 1 or 2"),
    (lambda r: r.update(schema_version=3), "record schema_version must be 1 or 2, got '3'"),
    (lambda r: r["run_info"].pop("size"), "record is missing run_info.size"),
    (lambda r: r["run_info"]["noise"].pop("rate"), "record is missing run_info.noise.rate (a number)"),
    (lambda r: r["metrics"].update(collapse={"cka": 0.5}), "record is missing metrics.collapse.metrics (an object)"),
    (lambda r: r.update(collapse=None), "record has an unknown field collapse (version 2 keeps it under "
                                        "metrics.collapse)"),
    (lambda r: r["train_info"].update(wall_seconds="1 s"),
     "record train_info.wall_seconds must be a number or null, got '1 s'"),
    (lambda r: r["run_info"]["config"].update(n=np.int64(3)), "record run_info.config.n is a int64"),
    (lambda r: r["train_info"].update(sizes={1: 2}), "record train_info.sizes has a non-string key 1"),
])
def test_validate_names_the_bad_key(record: dict, mutate, message: str) -> None:
    records.validate_record(record)
    mutate(record)
    with pytest.raises(RegbenchError, match=re.escape(message)) as err:
        records.validate_record(record)
    assert "\n" not in str(err.value)


def test_null_test_metrics_and_predictions_are_valid(record: dict) -> None:
    record.update(predictions=None, metrics={"test": None})
    record["run_info"]["status"] = "diverged"
    record["train_info"]["best_epoch"] = None
    records.validate_record(record)


def test_provenance(data_file: Path) -> None:
    meta = records.collect_provenance(model_name="m", model_checksum=None, data_files=[str(data_file)], device="cpu",
                                      extra={"host": "x"})
    assert meta["schema_version"] == records.SCHEMA_VERSION
    assert set(meta["packages"]) == set(records.PACKAGES)
    assert meta["packages"]["torch"] == metadata.version("torch")
    assert meta["packages"]["mlflow"] == metadata.version("mlflow")
    assert meta["data_files"] == {str(data_file): hashlib.sha256(data_file.read_bytes()).hexdigest()}
    assert meta["model"] == {"name": "m", "checksum": None}
    assert meta["torch_threads"] == torch.get_num_threads()
    assert meta["determinism"] == {"deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    assert set(meta["git"]) == {"sha": None, "dirty": None}.keys()
    assert meta["git"]["sha"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git"]["sha"])
    assert datetime.fromisoformat(meta["created_at"]).utcoffset().total_seconds() == 0
    assert meta["host"] == "x"


def test_provenance_without_git_does_not_raise(data_file: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable
    meta = records.collect_provenance(model_name="m", model_checksum=None, data_files=[], device="cpu")
    assert meta["git"] == {"sha": None, "dirty": None}


def test_file_hash_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n")
    first = records.file_sha256(path)
    assert records.file_sha256(path) == first
    path.write_text("a,b\n1,2\n")
    assert records.file_sha256(path) == hashlib.sha256(b"a,b\n1,2\n").hexdigest() != first


def test_read_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"run_info": ')
    (tmp_path / "bad.json.gz").write_bytes(gzip.compress(b"{}")[:-6])
    (tmp_path / "list.json").write_text("[]")
    for name in ("bad.json", "bad.json.gz", "list.json"):
        with pytest.raises(RegbenchError, match=f"record .*{re.escape(name)} does not parse"):
            records.read_record(tmp_path / name)
    with pytest.raises(RegbenchError, match="does not exist"):
        records.read_record(tmp_path / "missing.json")


def test_iter_records_finds_both_formats_in_order(tmp_path: Path, record: dict) -> None:
    records.write_record(tmp_path / "b" / "two.json.gz", record)
    records.write_record(tmp_path / "a" / "one.json", record)
    (tmp_path / "a" / ".tmp-abc.part").write_text("{half")
    (tmp_path / "a" / ".tmp-abc.json").write_text("{half")
    (tmp_path / "a" / "notes.txt").write_text("not a record")
    found = list(records.iter_records(tmp_path))
    assert [p.relative_to(tmp_path).as_posix() for p, _ in found] == ["a/one.json", "b/two.json.gz"]
    assert all(r == record for _, r in found)


def test_compact_predictions() -> None:
    assert records.compact_predictions(np.array([2, 1]), np.array([1, 0]), "label") == {
        "kind": "label", "ids": [2, 1], "pred": [1, 0]}
    values = records.compact_predictions([0, 1], [np.float32(0.123456789), 12345.678], "value")["pred"]
    assert values == [0.123457, 12345.7]
    assert records.compact_predictions([0], [np.array([0, 3, 3])], "tags")["pred"] == [[0, 3, 3]]
    with pytest.raises(ValueError, match="kind"):
        records.compact_predictions([0], [1], "probs")
    with pytest.raises(ValueError, match="2 ids but 1 predictions"):
        records.compact_predictions([0, 1], [1], "label")


def test_a_grids_own_outputs_do_not_mark_the_code_dirty():
    assert not records._changes_code("# branch.oid 0123abcd")
    assert not records._changes_code("? results/quick/")  # the grid's records, written while it runs
    assert records._changes_code("? baselines/my_method.py")  # new code is a change
    assert records._changes_code("1 .M N... 100644 100644 100644 0123 4567 harness/run/train.py")

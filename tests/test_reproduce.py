"""`regbench reproduce` / `compare`: a record re-runs bit for bit from what it holds; a record this machine cannot
re-make is named in one line and not run; tolerance mode reports Δ; `--sample` is a fixed subset."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from regbench.harness import api, reproduce
from regbench.harness.cli import main
from regbench.harness.io import records


@pytest.fixture(scope="module")
def published(tmp_path_factory, data_dir):
    """Two final-run records made the way a grid makes them (phase final), under <tmp>/pub/records."""
    from regbench.harness.run.train import TrainConfig

    out = tmp_path_factory.mktemp("pub")
    paths = []
    for seed in (1, 2):
        config = api.RunConfig(task="sst2", method="std", model="tiny-random-bert", train_size=16, dev_size=8,
                               max_test_examples=16, max_length=32, seed=seed, data_dir=data_dir, out_dir=str(out),
                               track=False, train=TrainConfig(epochs=2, batch_size=8, lr=1e-3, device="cpu"))
        paths.append(Path(api.run(config, api.RunHooks(phase="final"))["_path"]))
    return out, paths


def _tampered(path: Path, tmp_path: Path, change) -> Path:
    record = records.read_record(path)
    changed = copy.deepcopy(record)
    change(changed)
    target = tmp_path / "tampered" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(changed))
    return target


def test_a_record_re_runs_bit_for_bit_from_the_record_alone(published, tmp_path, capsys):
    _, (path, _) = published
    assert main(["reproduce", str(path), "--out", str(tmp_path / "re")]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 final runs reproduced bit-for-bit" in out
    assert (tmp_path / "re" / "reproduce.md").exists() and (tmp_path / "re" / "reproduce.json").exists()
    record = records.read_record(path)
    assert record["meta_info"]["command"] and "lock_sha256" in record["meta_info"]["environment"]


@pytest.mark.parametrize(("what", "change", "message"), [
    ("data hash", lambda r: r["meta_info"]["data_files"].update(
        {k: "0" * 64 for k in r["meta_info"]["data_files"]}), "data file"),
    ("model checksum", lambda r: r["run_info"]["config"]["model"].update(checksum="f" * 64), "checksum"),
    ("task version", lambda r: r["run_info"]["config"]["task"].update(version=99), "version 99"),
    ("suite version", lambda r: r["run_info"]["config"].update(suite_version=1), "suite version 1"),
    ("packages", lambda r: r["meta_info"]["packages"].update(torch="1.0.0"), "torch"),
])
def test_a_tampered_record_gets_one_line_and_no_run(published, tmp_path, what, change, message):
    _, (path, _) = published
    tampered = _tampered(path, tmp_path, change)
    (outcome,) = reproduce.reproduce([(tampered, records.read_record(tampered))], tmp_path / "re")
    assert outcome.verdict == "not run" and message in outcome.reason and "\n" not in outcome.reason, what
    assert not list((tmp_path / "re").glob("records/**/*.json"))  # nothing was trained


def test_other_packages_run_with_allow_other_env(published, tmp_path):
    _, (path, _) = published
    tampered = _tampered(path, tmp_path, lambda r: r["meta_info"]["packages"].update(torch="1.0.0"))
    (outcome,) = reproduce.reproduce([(tampered, records.read_record(tampered))], tmp_path / "re",
                                     allow_other_env=True)
    assert outcome.verdict == "reproduced"


def test_tolerance_mode_reports_the_delta_of_each_metric(published, tmp_path):
    _, (path, _) = published

    def shift(record):
        record["metrics"]["test"]["accuracy"] += 0.01
        record["metrics"]["test"]["primary"] += 0.01

    tampered = _tampered(path, tmp_path, shift)
    pair = [(tampered, records.read_record(tampered))]
    (strict,) = reproduce.reproduce(pair, tmp_path / "strict")
    assert strict.verdict == "differs"
    assert strict.deltas == pytest.approx({"test/accuracy": -0.01, "test/primary": -0.01})
    (loose,) = reproduce.reproduce(pair, tmp_path / "loose", tolerance=0.02)
    assert loose.verdict == "reproduced"


def test_sample_picks_the_same_subset_every_time():
    items = list(range(20))
    first = reproduce.sample(items, 5)
    assert first == reproduce.sample(items, 5) == sorted(first) and len(set(first)) == 5
    assert reproduce.sample(items, 50) == items


def test_compare_two_result_directories_by_run_key(published, tmp_path, capsys):
    pub, (path, other) = published
    candidate = tmp_path / "cand" / "records"
    candidate.mkdir(parents=True)
    (candidate / path.name).write_text(path.read_text())
    assert main(["compare", str(pub), str(tmp_path / "cand")]) == 1  # one run missing
    assert "1 of 2 final runs reproduced bit-for-bit; 0 differ, 1 not run" in capsys.readouterr().out
    (candidate / other.name).write_text(other.read_text())
    assert main(["compare", str(pub), str(tmp_path / "cand")]) == 0
    assert capsys.readouterr().out.strip().endswith("2 of 2 final runs reproduced bit-for-bit")


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["reproduce", str(tmp_path / "missing.json")]) == 2
    assert main(["reproduce", "--profile", "quick", "--tolerance", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("regbench: error:") for line in err)

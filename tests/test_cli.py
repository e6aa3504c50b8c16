"""The CLI: help texts, listing, validation, and one clear error line (exit 2, nothing written) for bad input."""

from __future__ import annotations

import pytest
import yaml

from regbench.harness.cli import main

TINY_RUN = ["run", "--model", "tiny-random-bert", "--train-size", "16", "--epochs", "1", "--max-test", "20",
            "--no-track"]


@pytest.mark.parametrize("command", [[], ["run"], ["ls"], ["validate"], ["plan"], ["bench"], ["check-method"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: regbench" in capsys.readouterr().out


def test_ls_tasks_and_methods(capsys):
    assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "sst2" in out and "token_classification" in out
    assert main(["ls", "methods", "-v"]) == 0
    out = capsys.readouterr().out
    assert "std++" in out and "epoch_multiplier" in out and "search lr" in out


def test_validate_builtin_tasks(capsys, data_dir):
    assert main(["validate", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert out.count("ok  ") >= 4


def test_run_prints_metrics_and_writes_a_record(tmp_path, capsys, data_dir):
    out_dir = tmp_path / "out"
    assert main([*TINY_RUN, "--task", "sst2", "--data-dir", data_dir, "--out", str(out_dir), "--lr", "1e-3"]) == 0
    printed = capsys.readouterr().out
    assert "test" in printed and "accuracy=" in printed
    assert len(list(out_dir.rglob("*.json"))) == 1


def _bad_task_dir(tmp_path):
    task = {"name": "badcol", "version": 1, "type": "classification", "source": {"mirror": "glue/sst2"},
            "splits": {"train": "train", "test": "validation"}, "text_columns": ["text"], "label_column": "label",
            "num_labels": 2, "metrics": ["accuracy"], "primary": ["accuracy"]}
    directory = tmp_path / "tasks"
    directory.mkdir()
    (directory / "badcol.yaml").write_text(yaml.safe_dump(task))
    return directory


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "rtee"], "unknown task 'rtee'; did you mean 'rte'"),
        (["--task", "sst2", "--method", "stdd"], "unknown method 'stdd'; did you mean 'std'"),
        (["--task", "sst2", "--lr", "-1"], "--lr must be a positive number"),
        (["--task", "sst2", "--lr", "nan"], "--lr must be a positive number"),
        (["--task", "sst2", "--train-size", "1000000"], "train size 1000000 does not fit task 'sst2'"),
        (["--task", "sst2", "--train-size", "lots"], "--train-size: size 'lots' is not understood; write k16"),
        (["--task", "sst2", "--param", "alpha=1"], "method 'std' has no parameter 'alpha'"),
        (["--task", "sst2", "--data-dir", "/nonexistent/data"], "data directory /nonexistent/data does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_writes_nothing(args, message, tmp_path, capsys, data_dir):
    out_dir = tmp_path / "out"
    argv = [*TINY_RUN, "--out", str(out_dir), *args]
    if "--data-dir" not in args:
        argv += ["--data-dir", data_dir]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regbench: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not out_dir.exists()


def test_missing_column_in_task_yaml(tmp_path, capsys, data_dir):
    out_dir = tmp_path / "out"
    argv = [*TINY_RUN, "--tasks-dir", str(_bad_task_dir(tmp_path)), "--task", "badcol", "--data-dir", data_dir,
            "--out", str(out_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs column 'text'" in err and "columns: sentence, label, idx" in err
    assert not out_dir.exists()


def test_missing_data_file(tmp_path, capsys):
    empty = tmp_path / "emptydata"
    empty.mkdir()
    out_dir = tmp_path / "out"
    assert main([*TINY_RUN, "--task", "sst2", "--data-dir", str(empty), "--out", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert "glue/sst2/train.parquet" in err and "is missing" in err
    assert not out_dir.exists()


def test_check_method_runs_the_conformance_suite(capsys):
    assert main(["check-method", "STD"]) == 0
    assert "6/6 checks passed" in capsys.readouterr().out
    assert main(["check-method", "stdd"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("regbench: error: unknown method 'stdd'; did you mean") and len(err.splitlines()) == 1

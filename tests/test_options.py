"""Run settings are declared once (harness/run/config.py): `regbench run`'s options and a profile's run keys derive
from the RunConfig/TrainConfig fields, so their defaults cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from regbench.harness.cli import RUN_OPTIONS, RUN_OUTPUT_OPTIONS, build_parser
from regbench.harness.core.errors import ConfigError
from regbench.harness.core.options import add_options, values
from regbench.harness.grid.profiles import KEYS, parse_profile
from regbench.harness.run.config import RunConfig, TrainConfig


def _config(argv: list[str]) -> RunConfig:
    args = build_parser().parse_args(["run", *argv])
    options = RUN_OPTIONS + RUN_OUTPUT_OPTIONS
    return RunConfig(**values(args, RunConfig, options),
                     train=TrainConfig(**values(args, RunConfig, options, prefix="train.")))


def test_the_run_options_default_to_the_dataclass_defaults():
    assert _config(["--task", "sst2"]) == RunConfig(task="sst2")


def test_each_run_option_reaches_its_field():
    config = _config(["--task", "trec", "--method", "r3f", "--param", "eps=0.1", "--param", "lambda_=2",
                      "--train-size", "k16", "--noise", "0.2", "--noise-type", "asymmetric", "--max-test", "50",
                      "--lr", "3e-5", "--epochs", "5", "--precision", "fp32", "--out", "elsewhere", "--no-track",
                      "--pooling", "cls", "--dropout", "0.2"])
    expected = RunConfig(task="trec", method="r3f", method_params={"eps": "0.1", "lambda_": "2"}, train_size="k16",
                         noise_rate=0.2, noise_type="asymmetric", max_test_examples=50, out_dir="elsewhere",
                         track=False, pooling="cls", dropout=0.2,
                         train=TrainConfig(lr=3e-5, epochs=5, precision="fp32"))
    assert config == expected
    assert _config(["--task", "sst2", "--train-size", "n100"]).train_size == 100


@pytest.mark.parametrize("argv, message", [(["--param", "eps"], "--param expects NAME=VALUE, got 'eps'"),
                                           (["--train-size", "k0"], "--train-size")])
def test_a_bad_value_is_a_one_line_regbench_error_after_parsing(argv, message):
    with pytest.raises(ConfigError, match=message):
        _config(["--task", "sst2", *argv])


def test_options_of_a_nested_config_take_their_flag_from_the_field_name():
    parser = argparse.ArgumentParser()
    add_options(parser, RunConfig, ["train.warmup_ratio", "train.length_grouping", "seed"])
    args = parser.parse_args(["--warmup-ratio", "0.2", "--length-grouping", "0"])
    assert values(args, RunConfig, ["train.warmup_ratio", "train.length_grouping", "seed"], prefix="train.") == {
        "warmup_ratio": 0.2, "length_grouping": 0}
    assert values(args, RunConfig, ["train.warmup_ratio", "seed"]) == {"seed": 1}


def test_a_profile_sets_exactly_the_run_fields_marked_as_profile_keys():
    marked = {f.name for cls in (RunConfig, TrainConfig) for f in dataclasses.fields(cls)
              if f.metadata.get("profile_key")}
    assert marked == {"model", "pooling", "noise_type", "dev_size", "max_test_examples", "max_length", "dropout",
                      "ood", "collapse", "epochs", "batch_size", "evals"}
    assert marked <= set(KEYS)
    grid = {"tasks": ["sst2"], "sizes": ["k16"], "noise": [0.0], "seeds": [1], "methods": ["std"], "trials": 1}
    profile = parse_profile({**grid, "model": "tiny-random-bert", "epochs": 2, "evals": 4, "dropout": 0.0,
                             "train": {"weight_decay": 0.0}}, "p")
    assert profile.run == RunConfig(model="tiny-random-bert", dropout=0.0,
                                    train=TrainConfig(epochs=2, evals=4, weight_decay=0.0))
    assert parse_profile(grid, "p").run == RunConfig()

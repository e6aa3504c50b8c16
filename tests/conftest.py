"""Shared fixtures: a tiny random BERT (seconds per run) on the real mirrored data."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from regbench.benchmarks.data import default_data_dir  # noqa: E402
from regbench.harness.api import RunConfig  # noqa: E402
from regbench.harness.run.train import TrainConfig  # noqa: E402

TINY = "tiny-random-bert"

try:  # property tests draw the same examples on every run: CI must not fail (or pass) by luck
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("regbench", derandomize=True)
    _hypothesis_settings.load_profile("regbench")
except ImportError:  # test_yaml_numbers skips without hypothesis
    pass


@pytest.fixture(scope="session")
def data_dir() -> str:
    found = default_data_dir()
    if found is None or not found.is_dir():
        pytest.fail("the Parquet mirror was not found: set REGBENCH_DATA_DIR (e.g. to ../shared/data)")
    return str(found)


@pytest.fixture
def tiny_config(tmp_path, data_dir):
    """A factory of small, fast RunConfigs writing into a temporary directory."""

    def make(task: str = "sst2", method: str = "std", **overrides) -> RunConfig:
        train = TrainConfig(epochs=overrides.pop("epochs", 2), batch_size=8, lr=overrides.pop("lr", 1e-3), device="cpu")
        base = dict(task=task, method=method, model=TINY, train_size=24, dev_size=16, max_test_examples=40,
                    max_length=64, seed=1, train=train, data_dir=data_dir, out_dir=str(tmp_path / "out"), track=False)
        base.update(overrides)
        return RunConfig(**base)

    return make

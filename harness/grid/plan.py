"""``regbench plan``: the cells of a profile, how many runs they need and what they should cost, before running.

The estimate is a cost model calibrated on this project's reference machine (2 CPU cores, MiniLM, fp32): one example
costs ``A + B·L`` seconds to evaluate at average token length ``L`` (fitted to 176 ex/s on SST-2 and 60 ex/s on RTE) and
``TRAIN_FACTOR`` times that to train (42 samples/s on SST-2), scaled by the model's size relative to MiniLM and by a
method's ``relative_step_cost`` (default 1; measured: results/perf/methods.md). A trial trains the full epochs (pruning
only makes it cheaper) and evaluates dev every epoch; a final run adds the test set and its post-training extras
(profile keys ``ood``/``collapse``): a forward over each capped OOD set at its own token length, and the collapse probes
(fine-tuned and pretrained encoders over the probe set at the task's length and the transfer task's train/test sets at
theirs). Every final run trains afresh (suite version 2: the tuning seed is never a reported seed), and a run evaluates
dev ``evals`` times (profile key; default one per epoch), whatever its method's length. Other hardware: pass ``--speed``
(e.g. 10 for a GPU that is ten times faster), or ``--speed auto``: a few training steps of the profile's model on this
host, timed against this model (grid.calibrate) — hosts differ severalfold, so calibrate first. The plan prints its
assumptions. The constants below are the reference machine's; how far the uncalibrated and the calibrated plan were from
a real grid's wall time: README, "Speed".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from regbench.benchmarks.fewshot import default_dev_size, parse_size
from regbench.benchmarks.taskspec import get_task

from .. import api
from ..core.errors import DataError
from ..post.extras import OOD_MAX_EXAMPLES, PROBE_EXAMPLES, TRANSFER_K, TRANSFER_TASKS, TRANSFER_TEST_EXAMPLES
from ..run.method import METHODS
from ..run.model import load_pretrained
from .profiles import Profile
from .runner import Cell, plan_cells

EVAL_SECONDS_PER_EXAMPLE = 2.94e-3  # A: fixed cost per example
EVAL_SECONDS_PER_TOKEN = 2.11e-4  # B: cost per token
TRAIN_FACTOR = 4.2  # forward + backward + optimiser step vs a forward in eval mode
RUN_OVERHEAD_SECONDS = 1.0  # model copy, optimiser, record and MLflow writes
MINILM_PARAMETERS = 22.7e6


@dataclass(frozen=True)
class CellEstimate:
    cell: Cell
    train_examples: int
    dev_examples: int
    test_examples: int
    mean_tokens: float
    trial_seconds: float
    final_seconds: float
    note: str | None = None  # optional data the final runs will go without (bench records it and goes on)


def estimate(profile: Profile, data_dir: str | None = None, speed: float = 1.0) -> list[CellEstimate]:
    pretrained = load_pretrained(profile.run.model)
    scale = sum(p.numel() for p in pretrained.state_dict.values()) / MINILM_PARAMETERS / speed
    out = []
    for cell in plan_cells(profile, data_dir):
        if cell.na:
            out.append(CellEstimate(cell, 0, 0, 0, 0.0, 0.0, 0.0))
            continue
        out.append(_estimate_cell(profile, cell, pretrained.tokenizer, scale, data_dir))
    return out


def _estimate_cell(profile: Profile, cell: Cell, tokenizer: Any, scale: float, data_dir: str | None) -> CellEstimate:
    task = get_task(cell.task)
    pool, test, _ = api.prepare_pool(task, _config(profile, task.name, data_dir), tokenizer)
    size = parse_size(cell.size)
    if size.per_class:
        train = dev = size.per_class * task.num_labels
    else:
        dev = profile.run.dev_size or default_dev_size(len(pool), size.total)
        train = size.total or len(pool) - dev
    test_n = min(len(test), profile.run.max_test_examples or len(test))
    tokens = _mean_tokens(pool.features)
    per_example = _eval_seconds(tokens, scale)
    method_cls = METHODS.get(cell.method)
    method = method_cls.from_params(profile.method_params.get(cell.method, {}))
    epochs = method.num_epochs(profile.run.train.epochs)
    cost = float(method_cls.relative_step_cost)
    evals = profile.run.train.evals or profile.run.train.epochs
    trial = RUN_OVERHEAD_SECONDS + epochs * train * per_example * TRAIN_FACTOR * cost + evals * dev * per_example
    extra, note = _extras_seconds(profile, task, tokenizer, scale, data_dir, test_n, tokens)
    return CellEstimate(cell, train, dev, test_n, tokens, trial, trial + test_n * per_example + extra, note)


def _mean_tokens(features: list[dict[str, Any]]) -> float:
    return sum(len(f["input_ids"]) for f in features[:2000]) / max(1, min(2000, len(features)))


def _eval_seconds(tokens: float, scale: float) -> float:
    return (EVAL_SECONDS_PER_EXAMPLE + EVAL_SECONDS_PER_TOKEN * tokens) * scale


def _extras_seconds(profile: Profile, task: Any, tokenizer: Any, scale: float, data_dir: str | None,
                    test_n: int, tokens: float) -> tuple[float, str | None]:
    """Forward passes of a final run's OOD scoring and collapse probes (harness/post/extras.py), at their lengths; and a
    note when the probe transfer task's data is missing, which final runs record and go on without, as here."""
    cap = profile.run.max_test_examples or math.inf
    seconds = 0.0
    if profile.run.ood:
        for spec in (task.ood or {}).values():
            _, test, _ = api.prepare_pool(get_task(spec["task"]), _config(profile, spec["task"], data_dir), tokenizer)
            seconds += min(OOD_MAX_EXAMPLES, cap, len(test)) * _eval_seconds(_mean_tokens(test.features), scale)
    if not profile.run.collapse:
        return seconds, None
    probe = min(PROBE_EXAMPLES, test_n) * _eval_seconds(tokens, scale)  # both encoders: fine-tuned, pretrained
    other = next(t for t in TRANSFER_TASKS if t != task.name)
    try:
        _, test, _ = api.prepare_pool(get_task(other), _config(profile, other, data_dir), tokenizer)
    except DataError as err:  # post.extras: the record gets metrics.collapse.settings.transfer_error; the run goes on
        return seconds + 2 * probe, (f"collapse probe transfer to {other} will be skipped (the final runs record "
                                     f"why): {err}")
    transfer = TRANSFER_K * get_task(other).num_labels + min(TRANSFER_TEST_EXAMPLES, cap, len(test))
    return seconds + 2 * (probe + transfer * _eval_seconds(_mean_tokens(test.features), scale)), None


def notes(estimates: list[CellEstimate]) -> list[str]:
    """What the plan's cells will go without, once each (printed under the table)."""
    return list(dict.fromkeys(e.note for e in estimates if e.note))


def _config(profile: Profile, task: str, data_dir: str | None) -> api.RunConfig:
    return dataclasses.replace(profile.run, task=task, data_dir=data_dir)


def plan_table(profile: Profile, estimates: list[CellEstimate]) -> pd.DataFrame:
    rows = []
    for e in estimates:
        c = e.cell
        rows.append({"task": c.task, "size": c.size, "noise": c.noise, "method": c.method,
                     "trials": 0 if c.na else profile.trials, "finals": 0 if c.na else len(profile.seeds),
                     "train": e.train_examples, "dev": e.dev_examples, "test": e.test_examples,
                     "est_minutes": round((profile.trials * e.trial_seconds + len(profile.seeds) * e.final_seconds)
                                          / 60, 2),
                     "status": f"n/a: {c.na}" if c.na else "ok", "cell_key": c.key})
    return pd.DataFrame(rows)


def phase_notes(profile: Profile) -> list[str]:
    """The profile's exceptions to STD's schedule, one line per method that has one (they cost what `est_minutes`
    shows; dev evaluations are the same for every method)."""
    out = []
    for name in profile.methods:
        note = METHODS.get(name).from_params(profile.method_params.get(name, {})).phase_note(profile.run.train.epochs)
        if note:
            out.append(f"{name}: {note}")
    return out


def render(profile: Profile, table: pd.DataFrame, speed: float = 1.0, notes: list[str] | None = None) -> str:
    ok = table[table["status"] == "ok"]
    runs = int(ok["trials"].sum() + ok["finals"].sum())
    minutes = float(ok["est_minutes"].sum())
    lines = [
        f"profile {profile.name}: {len(table)} cells ({len(ok)} runnable, {len(table) - len(ok)} n/a), "
        f"{runs} runs ({int(ok['trials'].sum())} trials + {int(ok['finals'].sum())} final runs)",
        f"estimated cost: {_duration(minutes)} on the reference machine (2 CPU cores, fp32)"
        f"{'' if speed == 1 else f' / speed {speed:g}'}",
        "",
        table.drop(columns=["cell_key"]).to_string(index=False, max_colwidth=70),
        *(f"note: {note}" for note in notes or ()),
    ]
    return "\n".join(lines)


def _duration(minutes: float) -> str:
    if minutes < 90:
        return f"{minutes:.1f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 60 / 24:.1f} days ({math.ceil(minutes / 60)} h)"

"""Step time and memory of every method relative to STD, on the same batches (MiniLM, SST-2).

    python benchmarks/perf/methods.py [--methods std,repina_i,...] [--steps 30] [--repeats 5] [--device auto]

Each measurement trains a fresh all-MiniLM-L6-v2 task model with the real loop (``harness.run.train.train``, one
profile epoch of ``--steps`` optimiser steps) on the same SST-2 training sentences with the same seed, so every
method sees the same batches in the same order. A method's step time is its last epoch's time over its steps: a
method that adds epochs (STD++) or a warm-up phase (MVCR's AE warm-up, LP-FT's head stage) is timed in its main
phase; ``prepare`` (e.g. filling REPINA's target cache) and dev evaluation are not part of a step. Rows:
  - every registered method with its default hyperparameters (``--methods`` to choose; default: all);
  - ``NAME (uncached)`` for every method with a ``cache_targets`` hyperparameter (REPINA: a frozen forward per step);
  - per row, forward-only inference over the same batches with the model as it is after ``finalize`` (MVCR after
    unplug must match STD's plain model: same graph);
  - the memory a method caches (``cache_nbytes()``, REPINA's targets) per 1k training examples;
  - peak memory: CUDA's ``max_memory_allocated`` of the training loop on a GPU, else the peak RSS of one run in a
    fresh child process (``--no-rss`` skips those children).
Variants are interleaved across ``--repeats`` (≥ 5 for reported numbers) and the median is reported. Writes
``results/perf/methods.md``.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from regbench.benchmarks.data import encode_split
from regbench.benchmarks.perf import publish
from regbench.benchmarks.taskspec import get_task
from regbench.harness.run import batching
from regbench.harness.run.method import METHODS, get_method
from regbench.harness.run.model import TaskModel, load_pretrained
from regbench.harness.run.train import TrainConfig, resolve_device, train

BATCH = 16
LR = 1e-4
SEED = 0


@dataclass(frozen=True)
class Variant:
    label: str
    method: str
    params: tuple[tuple[str, object], ...] = ()


@dataclass
class Sample:
    step_s: float
    infer_s: float
    peak_mb: float | None
    cache_per_1k_mb: float | None


@dataclass
class Row:
    variant: Variant
    samples: list[Sample] = field(default_factory=list)
    rss_mb: float | None = None


def variants(names: list[str]) -> list[Variant]:
    out = []
    for name in names:
        out.append(Variant(name, name))
        if "cache_targets" in get_method(name).config.to_dict():
            out.append(Variant(f"{name} (uncached)", name, (("cache_targets", False),)))
    return out


def sample_features(n: int) -> list[dict]:
    pool = encode_split(get_task("sst2"), "train", load_pretrained("minilm").tokenizer, 128)
    chosen = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))[:n].tolist()
    return [pool.features[i] for i in chosen]


def measure(variant: Variant, features: list[dict], device: str, precision: str) -> Sample:
    """One fresh training run of the variant; its step time, inference time after finalize and memory."""
    pretrained = load_pretrained("minilm")
    task = get_task("sst2")
    method = get_method(variant.method, dict(variant.params))
    cache: dict[str, float] = {}
    finalize = method.finalize

    def finalize_and_note(model: TaskModel) -> None:  # the cache is released in finalize: read it just before
        held = getattr(method, "cache", None)
        if hasattr(method, "cache_nbytes") and held:
            cache["per_1k_mb"] = method.cache_nbytes() / len(held) * 1000 / 2**20
        finalize(model)

    method.finalize = finalize_and_note  # type: ignore[method-assign]
    torch.manual_seed(SEED)
    model = TaskModel(pretrained, task.type, task.num_labels, head_seed=SEED)
    config = TrainConfig(epochs=1, batch_size=BATCH, lr=LR, device=device, precision=precision)
    dev = features[:8]
    data: dict[str, Any] = {"train": features, "dev": dev, "test": None}  # no test set: nothing to score
    result = train(model, method, task, data, config, SEED,
                   pretrained.tokenizer.pad_token_id)
    steps = -(-len(features) // BATCH)
    infer = inference_seconds(model, features, resolve_device(device)) / steps
    sample = Sample(result.epoch_seconds[-1] / steps, infer, result.peak_memory_mb, cache.get("per_1k_mb"))
    method.finalize = finalize  # type: ignore[method-assign]  # break the method ↔ wrapper cycle: it kept every run's model alive until a gen-2 gc
    gc.collect()  # and any other cycle: memory growth across measurements slowed the later ones (seen: 13 GB)
    return sample


@torch.inference_mode()
def inference_seconds(model: TaskModel, features: list[dict], device: torch.device) -> float:
    model.eval()
    order = [list(range(i, min(i + BATCH, len(features)))) for i in range(0, len(features), BATCH)]
    batches = list(batching.iterate(features, order, 0, device))
    model(**batches[0])  # warm-up
    _sync(device)
    start = time.perf_counter()
    for batch in batches:
        model(**batch)
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _child_rss(variant: Variant, features: list[dict], device: str, precision: str, queue) -> None:
    measure(variant, features, device, precision)
    # VmHWM, not getrusage's ru_maxrss: the latter survives fork + exec and would report the parent's peak.
    status = Path("/proc/self/status")
    if status.exists():
        line = next(li for li in status.read_text().splitlines() if li.startswith("VmHWM:"))
        queue.put(int(line.split()[1]) / 1024)
    else:
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)  # bytes on macOS


def peak_rss_mb(variant: Variant, features: list[dict], device: str, precision: str) -> float:
    """Peak RSS of a fresh process that runs the variant once (imports and model load included, same for all)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_rss, args=(variant, features, device, precision, queue))
    child.start()
    value = queue.get()
    child.join()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="", help="comma-separated method names (default: every registered one)")
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", help="fp32 | bf16 | auto")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child processes (CPU)")
    parser.add_argument("--out", default="results/perf/methods.md")
    args = parser.parse_args()
    names = [n.strip() for n in args.methods.split(",") if n.strip()] or [
        n for n in METHODS.names() if not n.startswith("_")]
    if "std" not in names:
        names.insert(0, "std")  # the reference of every ratio
    features = sample_features(args.steps * BATCH)
    rows = [Row(v) for v in variants(names)]
    for row in rows:  # warm-up: first-call costs (allocator, kernels) belong to no method
        measure(row.variant, features[: 2 * BATCH], args.device, args.precision)
    for repeat in range(args.repeats):
        for row in rows:
            row.samples.append(measure(row.variant, features, args.device, args.precision))
            s = row.samples[-1]
            print(f"repeat {repeat + 1}/{args.repeats}  {row.variant.label:28s} step {s.step_s * 1e3:7.1f} ms  "
                  f"inference {s.infer_s * 1e3:6.1f} ms", flush=True)
    if resolve_device(args.device).type == "cpu" and not args.no_rss:
        for row in rows:
            row.rss_mb = peak_rss_mb(row.variant, features, args.device, args.precision)
    write_report(rows, args, len(features))


def write_report(rows: list[Row], args: argparse.Namespace, n_examples: int) -> None:
    def med(row: Row, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in row.samples)

    std = next(r for r in rows if r.variant.label == "std")
    device = resolve_device(args.device)
    lines = [
        "# Method step time and memory relative to STD",
        "",
        f"Generated by `python benchmarks/perf/methods.py --steps {args.steps} --repeats {args.repeats} "
        f"--device {args.device} --precision {args.precision}`.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + f", torch {torch.__version__} with {torch.get_num_threads()} threads. Model: all-MiniLM-L6-v2; data: "
        f"{n_examples} SST-2 training sentences, the same batches for every method; batch size {BATCH}; "
        f"{args.steps} optimiser steps per measurement; median of {args.repeats} interleaved repeats. Step time = the "
        "method's main-phase epoch over its steps (no prepare, no evaluation); inference = forward-only over the "
        "same batches with the model after `finalize`.",
        "",
        "| method | step ms (median) | vs STD | all repeats (ms) | inference after finalize vs STD | "
        "peak memory MB | cache per 1k examples |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        step, infer = med(row, "step_s"), med(row, "infer_s")
        repeats = ", ".join(f"{s.step_s * 1e3:.0f}" for s in row.samples)
        peak = row.samples[-1].peak_mb if device.type == "cuda" else row.rss_mb
        peak_text = "–" if peak is None else f"{peak:.0f}" + (" (RSS)" if device.type == "cpu" else "")
        cache = row.samples[-1].cache_per_1k_mb
        lines.append(f"| {row.variant.label} | {step * 1e3:.1f} | {step / med(std, 'step_s'):.2f}× | {repeats} | "
                     f"{infer / med(std, 'infer_s'):.2f}× | {peak_text} | "
                     f"{'–' if cache is None else f'{cache:.2f} MB'} |")
    lines += ["", "Targets (issue 5): REPINA_I cached ≤ 1.03×, REPINA_MLP cached ≤ 1.08×, MVCR ≤ 1.15×, MVCR "
              "inference after unplug = 1.00×; REPINA uncached is reported for reference.",
              "Targets (issue 6): R3F (and R4F) ≤ 2.1×, SMART ≤ 3.1×, every other baseline ≤ 1.15×; mvcr+mixout is "
              "MVCR's cost plus Mixout's.", ""]
    publish(lines, args.out)


if __name__ == "__main__":
    main()

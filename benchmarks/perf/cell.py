"""One grid cell end to end: regbench vs what users do today (HF ``Trainer.hyperparameter_search`` + re-runs).

    python benchmarks/perf/cell.py [--repeats 5] [--pruning-trials 16] [--pruning-seeds 3]    (or: nox -s perf)

The cell: SST-2, k = 16 per class (32 train, 32 dev), 10 epochs, batch 8, 4 Optuna trials over the learning rate
(log[1e-5, 5e-4]), then the best configuration re-run over 3 seeds with test evaluation (the 872 GLUE validation
sentences), MLflow logging on in both paths.
  (a) regbench: ``harness.grid.run_cell`` (weights and tokenized data in memory across trials, median pruning on the
      per-epoch dev metric, no test evaluation inside trials; the final run of the tuning seed is the best trial's
      model scored on the test set, not a second training of the same run).
  (b) Trainer: ``Trainer.hyperparameter_search(backend="optuna", n_trials=4)`` with ``model_init`` loading the
      checkpoint per trial and evaluating every epoch, then three ``Trainer`` runs with the best learning rate and a
      test evaluation, ``report_to="mlflow"``.
The two paths are interleaved and repeated; medians are reported. Second part: pruning on a 16-trial study
(regbench; none, median, successive halving with η = 3 from epoch 1 and from epoch 2), repeated over TPE seeds,
as independent studies and as paired ones (the same configurations in the same order): compute saved (trained
steps) and the chosen configuration's dev score; more pruner settings are replayed on the unpruned studies' curves.
Writes ``results/perf/cell.md`` and the unpruned studies' trials to ``results/perf/cell-unpruned-studies.json``.

The pruning measurement alone, on any size of the cell (only the unpruned studies train; recorded seeds are kept, so a
larger ``--pruning-seeds`` tops up), optionally with each setting's chosen configuration scored on the test set:

    python benchmarks/perf/cell.py --pruning-only --pruning-size n256 --pruning-seeds 5 --test-chosen \
        --out results/perf/pruning-n256.md
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import datasets
import optuna
import torch
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)
from transformers import logging as hf_logging
from transformers.trainer_utils import BestRun

from regbench.benchmarks.perf.cell_report import write_replay_report, write_report
from regbench.benchmarks.perf.replay import (
    WITH_NONE,
    curves_path,
    load_curves,
    replay,
    save_curves,
)
from regbench.benchmarks.taskspec import get_task
from regbench.harness import grid
from regbench.harness.api import RunConfig, derive_seeds, prepare_data
from regbench.harness.grid import tune
from regbench.harness.grid.profiles import parse_profile
from regbench.harness.run.evaluation import score
from regbench.harness.run.method import METHODS
from regbench.harness.run.model import load_pretrained, resolve_model_path

hf_logging.set_verbosity_error()
optuna.logging.set_verbosity(optuna.logging.WARNING)
PROFILE = {"model": "minilm", "tasks": ["sst2"], "sizes": ["k16"], "noise": [0.0], "seeds": [1, 2, 3],
           "methods": ["std"], "trials": 4, "pruner": "median", "epochs": 10, "batch_size": 8, "max_length": 128,
           "ood": False, "collapse": False,  # the Trainer path has no post-training extras: compare like with like
           "startup_trials": 0}  # plain TPE: the pruning studies compare TPE seeds, which common random numbers tie


def regbench_cell(out: Path, trials: int = 4, pruner: str | dict = "median", seeds: tuple[int, ...] = (1, 2, 3),
                  sampler: str = "", configurations: Sequence[dict] = (), size: str = "k16",
                  method: str = "std") -> dict:
    """One cell through the grid; ``sampler`` names the TPE seed stream (the study's worker name).
    ``configurations`` are enqueued first (Optuna's ``enqueue_trial``): the study tries exactly those, in order."""
    name = METHODS.get(method).name  # an alias names the same method
    profile = parse_profile({**PROFILE, "trials": trials, "pruner": pruner, "seeds": list(seeds), "sizes": [size],
                             "methods": sorted({"std", name})}, "perf")  # a profile always holds std
    (cell,) = [c for c in grid.plan_cells(profile) if c.method == name]
    out.mkdir(parents=True, exist_ok=True)
    ctx = grid.GridContext(profile, out, f"sqlite:///{out / 'mlflow.db'}", grid.open_storage(out), worker=sampler)
    if configurations:
        study = tune.open_study(ctx.storage, cell.key, sampler, profile.pruner, cell.block, profile.startup_trials)
        for params in configurations:
            study.enqueue_trial(params)
    start = time.perf_counter()

    class Bar:
        def update(self, n: int = 1) -> None:
            pass

    summary = grid.run_cell(ctx, cell, Bar())
    summary["measured_seconds"] = time.perf_counter() - start
    return summary


def _hf_dataset(features: list[dict]) -> datasets.Dataset:
    keep = ("input_ids", "attention_mask", "token_type_ids", "labels")
    return datasets.Dataset.from_list([{k: f[k] for k in keep if k in f} for f in features])


def trainer_cell(out: Path) -> dict:
    """The Trainer path on exactly the same examples (split and seed derivation from regbench)."""
    pretrained = load_pretrained("minilm")
    task = get_task("sst2")
    config = RunConfig(task="sst2", train_size="k16", max_length=128)
    seeds = derive_seeds(1)
    data, _ = prepare_data(task, config, pretrained.tokenizer, seeds["data"], seeds["noise"])
    train_ds, dev_ds, test_ds = (_hf_dataset(data[s]) for s in ("train", "dev", "test"))
    path = resolve_model_path("minilm")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{out / 'mlflow.db'}"
    os.environ["MLFLOW_EXPERIMENT_NAME"] = "trainer-cell"

    def model_init(trial=None):
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)

    def metrics(pred):
        return {"accuracy": score(task, pred.predictions.argmax(-1).tolist(), pred.label_ids.tolist())["accuracy"]}

    def args(seed: int, lr: float = 1e-4) -> TrainingArguments:
        return TrainingArguments(output_dir=str(out / "trainer"), num_train_epochs=10, per_device_train_batch_size=8,
                                 per_device_eval_batch_size=64, learning_rate=lr, eval_strategy="epoch",
                                 save_strategy="no", logging_strategy="epoch", report_to=["mlflow"], seed=seed,
                                 use_cpu=True, disable_tqdm=True, warmup_steps=4)

    collator = DataCollatorWithPadding(pretrained.tokenizer)
    start = time.perf_counter()
    trainer = Trainer(model_init=model_init, args=args(1), train_dataset=train_ds, eval_dataset=dev_ds,
                      data_collator=collator, compute_metrics=metrics)
    best = trainer.hyperparameter_search(
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 5e-4, log=True)},
        backend="optuna", n_trials=4, direction="maximize", compute_objective=lambda m: m["eval_accuracy"])
    tuned = time.perf_counter() - start
    tests = []
    for seed in (1, 2, 3):
        assert isinstance(best, BestRun)  # one objective: one best run
        run = Trainer(model_init=model_init, args=args(seed, best.hyperparameters["learning_rate"]),
                      train_dataset=train_ds, eval_dataset=dev_ds, data_collator=collator, compute_metrics=metrics)
        run.train()
        tests.append(run.evaluate(test_ds)["eval_accuracy"])
    return {"measured_seconds": time.perf_counter() - start, "tuning_seconds": tuned, "tests": tests}


PRUNERS = {"none": "none", "median": "median", "halving": "halving",
           "halving from epoch 2": {"type": "halving", "min_resource": 2}}  # first rung after the 1-epoch warm-up


def pruning_study(out: Path, trials: int, samplers: int, size: str = "k16",
                  pruners: dict = PRUNERS) -> tuple[dict, dict, list]:
    """Every pruner on the same ``trials``-trial study, repeated with ``samplers`` TPE seeds (one study is one draw
    of the sampler: which configurations come first decides what a pruner can save). Two designs:

    * independent: each pruner runs its own TPE study (what a user gets; but TPE reads the pruned trials' partial
      curves, so after the first pruning the two studies sample different configurations and the comparison mixes
      the pruner's effect with the sampler's draw);
    * paired: each pruner's study is given the unpruned study's configurations in the same order, so the only
      difference is which trials stop early — the pruner's own cost (did it stop the eventual winner?).

    Steps and the chosen dev score do not depend on the machine's speed; seconds do."""
    independent, paired, curves = {}, {}, []
    for index, (name, pruner) in enumerate(pruners.items()):
        runs = [regbench_cell(out / f"{index}-{s}", trials=trials, pruner=pruner, seeds=(1,), sampler=f"sampler{s}",
                              size=size) for s in range(1, samplers + 1)]
        independent[name] = _pruning_totals(runs)
        if pruner == "none":
            curves = [sorted(r["trials"], key=lambda t: t["number"]) for r in runs]
            paired[name] = independent[name]
        else:
            paired[name] = _pruning_totals([
                regbench_cell(out / f"paired-{index}-{s}", trials=trials, pruner=pruner, seeds=(1,),
                              sampler=f"sampler{s}", configurations=[t["params"] for t in study], size=size)
                for s, study in enumerate(curves, start=1)])
    return independent, paired, curves


def _pruning_totals(runs: list[dict]) -> dict:
    return {"steps": sum(r["steps"] for r in runs), "seconds": sum(r["trial_seconds"] for r in runs),
            "best_dev": [r["best_value"] for r in runs], "pruned": sum(r["n_pruned"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pruning-trials", type=int, default=16)
    parser.add_argument("--pruning-seeds", type=int, default=3, help="TPE seeds the pruning study is repeated with")
    parser.add_argument("--pruning-size", default="k16",
                        help="few-shot size of the pruning study's cell (n256: a dev set of 256, fine enough to "
                             "resolve 0.5 points; k16's 32 examples are 3.1 points each)")
    parser.add_argument("--pruning-only", action="store_true",
                        help="only the unpruned pruning studies, every pruner setting replayed on them")
    parser.add_argument("--pruning-method", default="std",
                        help="with --pruning-only: the method whose studies are measured (pruning compares trials of "
                             "one method, so what it costs may differ between methods)")
    parser.add_argument("--test-chosen", action="store_true",
                        help="with --pruning-only: train each setting's chosen configuration again and score it on "
                             "the test set (does the dev score a pruner loses change the model a grid ends with?)")
    parser.add_argument("--out", default="results/perf/cell.md")
    parser.add_argument("--curves", help="the unpruned studies' curves, read if there and saved to "
                                         "(default: <out>-unpruned-studies.json)")
    args = parser.parse_args()
    args.curves = Path(args.curves) if args.curves else curves_path(Path(args.out))
    torch.set_num_threads(min(2, os.cpu_count() or 2))
    if args.pruning_only:
        recorded = load_curves(args.curves, args.pruning_size, args.pruning_trials, args.pruning_method)
        with tempfile.TemporaryDirectory() as tmp:
            studies = unpruned_studies(Path(tmp), args, recorded)
            tests = chosen_test_scores(Path(tmp), studies, args) if args.test_chosen else None
        write_replay_report(Path(args.out), args, studies, tests)
        return
    # Both paths start from the same tokenized pool: loading and tokenizing SST-2 once is not what is compared.
    prepare_data(get_task("sst2"), RunConfig(task="sst2", train_size="k16"), load_pretrained("minilm").tokenizer, 1)
    ours, theirs, ours_tuning, theirs_tuning = [], [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            a = regbench_cell(Path(tmp) / "regbench")
            b = trainer_cell(Path(tmp) / "trainer")
        ours.append(a["measured_seconds"])
        ours_tuning.append(a["trial_seconds"])
        theirs.append(b["measured_seconds"])
        theirs_tuning.append(b["tuning_seconds"])
        print(f"repeat {repeat + 1}: regbench {a['measured_seconds']:.1f} s, Trainer {b['measured_seconds']:.1f} s",
              flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        pruning = pruning_study(Path(tmp), args.pruning_trials, args.pruning_seeds, args.pruning_size)
    save_curves(args.curves, pruning[2], args.pruning_size, "std")
    write_report(Path(args.out), args, ours, theirs, ours_tuning, theirs_tuning, pruning)


def unpruned_studies(tmp: Path, args, recorded: list[list[dict]]) -> list[list[dict]]:
    """The unpruned studies of TPE seeds 1..``--pruning-seeds``: the recorded ones are kept, only the missing seeds
    run, and the curves are saved after each one (an interruption loses at most the study in progress)."""
    studies = list(recorded)
    for s in range(len(studies) + 1, args.pruning_seeds + 1):
        run = regbench_cell(tmp / f"none-{s}", trials=args.pruning_trials, pruner="none", seeds=(1,),
                            sampler=f"sampler{s}", size=args.pruning_size, method=args.pruning_method)
        studies.append(sorted(run["trials"], key=lambda t: t["number"]))
        save_curves(args.curves, studies, args.pruning_size, args.pruning_method)
        print(f"unpruned study {s}/{args.pruning_seeds} done", flush=True)
    return studies[: args.pruning_seeds]


def chosen_test_scores(tmp: Path, studies: list[list[dict]], args) -> dict[str, list[float]]:
    """Test score of each replayed setting's chosen configuration, per study: the configuration trained again on the
    tuning seed (the trials' split and initialisation) and scored on the test set, as a grid's final run of that
    seed would be. A configuration chosen by several settings is trained once."""
    scored: dict[tuple[int, int], float] = {}
    tests = {}
    for name, spec in WITH_NONE.items():
        chosen = replay(studies, spec)["chosen"]
        for s, trial in enumerate(chosen, start=1):
            if (s, trial["number"]) not in scored:
                scored[s, trial["number"]] = _test_score(tmp / f"test-{s}-{trial['number']}", trial, args)
        tests[name] = [scored[s, t["number"]] for s, t in enumerate(chosen, start=1)]
    return tests


def _test_score(out: Path, trial: dict, args) -> float:
    (final,) = regbench_cell(out, trials=1, pruner="none", seeds=(1,), configurations=[trial["params"]],
                             size=args.pruning_size, method=args.pruning_method)["finals"]
    if final["dev_primary"] != trial["value"]:  # the replay's premise: a configuration's curve is reproducible
        print(f"warning: trial {trial['number']} trained again scores dev {final['dev_primary']}, "
              f"recorded {trial['value']}", flush=True)
    print(f"chosen trial {trial['number']} ({trial['params']}): test {final['test_primary']:.4f}", flush=True)
    return final["test_primary"]


if __name__ == "__main__":
    main()

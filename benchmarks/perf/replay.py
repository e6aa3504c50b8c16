"""Pruners replayed on recorded unpruned studies, and the tables of the pruning reports (used by ``cell.py``).

A study run without pruning records every trial's per-epoch dev curve. Replaying it under a pruner — each trial
reports its recorded values in order and stops where the pruner says — gives what a study with that pruner would
have done given the same configurations in the same order: on the CPU a trial's curve does not depend on when it
runs, so the replay is exact (``cell.md`` checks it against real paired studies to the step) and costs nothing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna

from regbench.harness.grid import tune

# Settings replayed on the unpruned studies: the trade-off between what a pruner saves and what it loses.
REPLAYED = {f"median, from epoch {w}": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": w}
            for w in (1, 2, 3, 4)}
REPLAYED |= {f"median, {n} startup trials": {"type": "median", "n_startup_trials": n, "n_warmup_steps": 1}
             for n in (4, 6)}
REPLAYED |= {f"halving η={eta}, from epoch {r}": {"type": "halving", "min_resource": r, "reduction_factor": eta}
             for eta in (3, 2) for r in (1, 2, 3)}
# ``none`` replayed too: the real studies' steps and scores
WITH_NONE: dict[str, dict] = {"none": {"type": "none"}, **REPLAYED}
TARGETS = "Targets: compute saved ≥ 2×, chosen configuration's dev score within 0.5 points of no pruning."


def replay(studies: list[list[dict]], spec: dict) -> dict:
    """``spec`` (a profile's pruner) replayed on each study: trained steps summed, best dev score per study and the
    trial that scored it (``chosen``: the configuration a grid would take to its final runs)."""
    steps, best_dev, chosen, pruned = 0, [], [], 0
    for trials in studies:
        study = optuna.create_study(direction="maximize", pruner=tune.make_pruner(spec))
        for recorded in trials:
            curve = [v for _, v in sorted(recorded["intermediate"].items(), key=lambda kv: int(kv[0]))]
            per_epoch = recorded["steps"] // max(1, len(curve))
            trial = study.ask()
            for epoch, value in enumerate(curve, start=1):
                trial.report(value, epoch)
                if trial.should_prune():
                    steps, pruned = steps + epoch * per_epoch, pruned + 1
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
            else:
                steps += len(curve) * per_epoch
                study.tell(trial, recorded["value"])
        best_dev.append(study.best_value)
        chosen.append(trials[study.best_trial.number])  # trial numbers follow the recorded order
    return {"steps": steps, "seconds": float("nan"), "best_dev": best_dev, "chosen": chosen, "pruned": pruned}


def curves_path(report: Path) -> Path:
    return report.with_name(f"{report.stem}-unpruned-studies.json")


def save_curves(path: Path, studies: list[list[dict]], size: str, method: str) -> None:
    """The unpruned studies' trials (params, per-epoch dev, steps): the data the replayed rows are computed from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [[{k: t[k] for k in ("number", "params", "value", "intermediate", "steps")} for t in study]
            for study in studies]
    path.write_text(json.dumps({"method": method, "size": size, "studies": kept}, indent=1) + "\n")


def load_curves(path: Path, size: str, trials: int, method: str) -> list[list[dict]]:
    """Studies recorded by an earlier run of the same cell (none if there is no file)."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    held = (saved["method"], saved["size"], len(saved["studies"][0]))
    if held != (method, size, trials) or any(len(study) != trials for study in saved["studies"]):
        raise SystemExit(f"{path} holds {held[0]} {held[1]} studies of {held[2]} trials, not {method} {size} of "
                         f"{trials}: pass another --out or --curves, or move that file away to start over")
    return saved["studies"]


def replayed_table(studies: list[list[dict]], tests: dict[str, list[float]] | None = None) -> list[str]:
    """Every ``REPLAYED`` setting on the unpruned studies, against them; with ``tests`` (setting → test score of
    its chosen configuration per study), a column of test Δ too."""
    return pruning_table({name: replay(studies, spec) for name, spec in WITH_NONE.items()}, seconds=False,
                         tests=tests)


def pruning_table(results: dict, seconds: bool = True, tests: dict[str, list[float]] | None = None) -> list[str]:
    """One row per pruner: steps, time (``seconds``), trials pruned, best dev per study, compute saved and dev Δ
    against ``none``."""
    none = results["none"]

    def delta(scores: list[float], reference: list[float]) -> str:
        points = [100 * (a - b) for a, b in zip(scores, reference, strict=True)]
        return f"{min(points):+.2f} / {statistics.mean(points):+.2f}"

    def spent(r: dict) -> str:
        return f"{r['seconds']:.1f}" if seconds else "—"

    def saved(r: dict) -> str:
        time = f", {none['seconds'] / max(1e-9, r['seconds']):.2f}× time" if seconds else ""
        return f"{none['steps'] / max(1, r['steps']):.2f}× steps{time}"

    test_head, test_rule = (" chosen configuration's test Δ worst / mean (points) |", "---|") if tests else ("", "")
    return [f"| pruner | trained steps | trial seconds | trials pruned | best dev accuracy | compute saved "
            f"| dev Δ worst / mean (points) |{test_head}",
            f"|---|---|---|---|---|---|---|{test_rule}",
            *(f"| {name} | {r['steps']} | {spent(r)} | {r['pruned']} | "
              f"{', '.join(f'{v:.4f}' for v in r['best_dev'])} | {saved(r)} | "
              f"{delta(r['best_dev'], none['best_dev'])} |"
              + (f" {delta(tests[name], tests['none'])} |" if tests else "")
              for name, r in results.items())]

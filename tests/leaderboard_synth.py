"""Synthetic result records and cell summaries with known answers, for the leaderboard tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regbench.harness.io import records


def make_record(task: str, method: str, seed: int, score: float | None, *, status: str = "ok", size: str = "k16",
                noise: float = 0.0, dev: float | None = None, collapse: dict[str, float] | None = None,
                ood: dict[str, float] | None = None) -> dict[str, Any]:
    run_info = {"run_id": f"{task}-{method}-{size}-{noise:g}-{seed}", "cell_key": f"{task}{method}{size}{noise:g}",
                "task": task, "method": method, "seed": seed, "status": status, "error": None, "profile": "synth",
                "size": size, "phase": "final", "config": {"method": {"name": method, "params": {}}},
                "noise": {"type": "symmetric" if noise else "none", "rate": noise, "realised_rate": noise,
                          "flipped_sha256": "0" * 64}, "params": {"lr": 1e-4}}
    metrics: dict[str, Any] = {"test": None if score is None else {"primary": score, "accuracy": score},
                               "dev": {"primary": dev if dev is not None else (score or 0.0)}}
    if ood:
        metrics["ood"] = {name: {"primary": value} for name, value in ood.items()}
    if collapse:
        metrics["collapse"] = {"metrics": collapse, "settings": {}}
    meta = {"schema_version": records.SCHEMA_VERSION, "git": {"sha": "abc1234", "dirty": False},
            "packages": {"torch": "2.13.0"}, "model": {"name": "minilm", "checksum": "feedbeef"},
            "data_files": {"/data/sst2/train.parquet": "d" * 64}}
    record = records.build_record(run_info=run_info, train_info={"dev_curve": [], "best_epoch": None,
                                                                 "wall_seconds": 10.0, "steps": 5},
                                  metrics=metrics, predictions=None, meta_info=meta)
    return record


def write(root: Path, record: dict[str, Any], gz: bool = False) -> Path:
    info = record["run_info"]
    name = f"{info['run_id']}-20260101T000000.json" + (".gz" if gz else "")
    return records.write_record(root / info["task"] / info["method"] / name, record, overwrite=True)


def write_cell(root: Path, task: str, method: str, trials: list[tuple[dict[str, Any], float]], size: str = "k16",
               noise: float = 0.0, cpu: float = 100.0) -> Path:
    best = max(trials, key=lambda t: t[1])
    cell = {"cell_key": f"{task}{method}{size}{noise:g}", "profile": "synth", "task": task, "size": size,
            "noise_rate": noise, "noise_type": "symmetric" if noise else "none", "method": method,
            "budget": len(trials),
            "trials": [{"number": i, "state": "COMPLETE", "params": p, "value": v, "steps": 10, "seconds": 1.0}
                       for i, (p, v) in enumerate(trials)],
            "best_params": best[0], "best_value": best[1], "wall_seconds": cpu, "steps": 100, "cpu_seconds": cpu,
            "gpu_seconds": 0.0}
    path = root / task / method / f"{cell['cell_key']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cell, sort_keys=True, indent=1))
    return path

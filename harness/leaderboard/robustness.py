"""Robustness to label noise, paired by seed, and scores relative to the task's chance level.

- Noisy − clean, per (size, task, method, noise level): the same method at the same seed (same data sample and
  initialisation; only the noise draw differs), so seed-to-seed luck cancels; mean over the paired seeds and its
  t-interval (``stats.t_interval`` of the paired differences).
- Chance level: ``train_info.majority_test``, the primary score of the majority-class predictor on the clean test
  set (the same test set at every noise level). "Above chance" = mean − chance. A method that never learned has a
  near-zero drop AND a near-zero score above chance, so a small drop is not mistaken for robustness. Old records
  without ``majority_test`` show "—" there.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import stats
from .loading import noise_order, size_order

CLEAN = "clean"


def paired_noise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (size, task, method, noisy level) with a clean counterpart."""
    scored = runs[np.isfinite(runs["primary"].to_numpy(float))]
    rows = []
    for (size, task, method), group in scored.groupby(["size", "task", "method"], sort=False):
        clean = group[group["noise"] == CLEAN].set_index("seed")
        if clean.empty:
            continue
        for noise, noisy in group[group["noise"] != CLEAN].groupby("noise", sort=False):
            noisy = noisy.set_index("seed")
            seeds = sorted(set(clean.index) & set(noisy.index))
            d = (noisy.loc[seeds, "primary"] - clean.loc[seeds, "primary"]).to_numpy(float)
            low, high = stats.t_interval(d)
            chance = _chance(pd.concat([clean, noisy]))
            rows.append({"size": size, "task": task, "method": method, "noise": noise, "seeds": len(seeds),
                         "clean": float(clean.loc[seeds, "primary"].mean()) if seeds else math.nan,
                         "noisy": float(noisy.loc[seeds, "primary"].mean()) if seeds else math.nan,
                         "chance": chance, "change": float(d.mean()) if len(d) else math.nan,
                         "change_low": low, "change_high": high})
    table = pd.DataFrame(rows, columns=["size", "task", "method", "noise", "seeds", "clean", "noisy", "chance",
                                        "change", "change_low", "change_high"])
    table["clean_above_chance"] = table["clean"] - table["chance"]
    table["noisy_above_chance"] = table["noisy"] - table["chance"]
    order = {"size": size_order, "noise": noise_order}
    return table.sort_values(["size", "task", "noise", "method"], key=lambda c: c.map(order.get(c.name, str)),
                             ignore_index=True, kind="stable")


def _chance(group: pd.DataFrame) -> float:
    values = group["majority_test"].to_numpy(float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else math.nan

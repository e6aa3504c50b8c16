"""Batches with dynamic padding, optionally grouped by length.

Dynamic padding pads each batch to its own longest sequence instead of the max length. Length grouping goes one
step further, as HF's ``group_by_length`` does: shuffle, cut into mega-batches of ``group_factor`` batches, sort each
mega-batch by length, cut it into batches and shuffle their order. Batches then hold similar lengths (little
padding) while staying random across epochs; a small factor keeps few-shot batches varied. The order depends only
on the generator, so runs stay reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

PAD_LABEL = -100


def collate(features: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of tokenized examples into tensors (labels of token tasks are padded with -100).
    Multiple-choice examples hold one row of ids per choice: they become (B, K, T) tensors."""
    if features and features[0]["input_ids"] and isinstance(features[0]["input_ids"][0], list):
        return _collate_choices(features, pad_id)
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {
        "input_ids": _pad([f["input_ids"] for f in features], width, pad_id),
        "attention_mask": _pad([f["attention_mask"] for f in features], width, 0),
        "idx": torch.tensor([f["idx"] for f in features]),
    }
    if "token_type_ids" in features[0]:
        batch["token_type_ids"] = _pad([f["token_type_ids"] for f in features], width, 0)
    labels = [f["labels"] for f in features]
    if isinstance(labels[0], list):
        batch["labels"] = _pad(labels, width, PAD_LABEL)
    else:
        batch["labels"] = torch.tensor(labels, dtype=torch.float32 if isinstance(labels[0], float) else torch.long)
    return batch


def _collate_choices(features: Sequence[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Flatten the choices, pad them to one width, and fold them back to (B, K, T)."""
    k = len(features[0]["input_ids"])
    width = max(len(row) for f in features for row in f["input_ids"])
    batch = {"idx": torch.tensor([f["idx"] for f in features]),
             "labels": torch.tensor([f["labels"] for f in features], dtype=torch.long)}
    for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
        if key in features[0]:
            batch[key] = _pad([row for f in features for row in f[key]], width, value).view(len(features), k, width)
    return batch


def _pad(rows: Sequence[Sequence[int]], width: int, value: int) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def batch_order(lengths: Sequence[int], batch_size: int, generator: torch.Generator,
                group_factor: int = 0) -> list[list[int]]:
    """Index batches for one training epoch: shuffled, and length-grouped when ``group_factor`` > 0."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    if group_factor <= 0:
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    mega = batch_size * group_factor
    batches: list[list[int]] = []
    for start in range(0, len(perm), mega):
        chunk = sorted(perm[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffle]


def eval_order(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches sorted by length (the least padding); predictions are re-ordered by id afterwards."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def iterate(features: Sequence[dict[str, Any]], order: list[list[int]], pad_id: int,
            device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    non_blocking = device.type == "cuda"
    for indices in order:
        batch = collate([features[i] for i in indices], pad_id)
        yield {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}

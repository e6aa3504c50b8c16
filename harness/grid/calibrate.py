"""``regbench plan --speed auto``: how fast this host trains, relative to the plan's reference machine.

Hosts differ severalfold in speed (and one host drifts from day to day), so a fixed cost model is only right on
the machine it was fitted on. This measures the profile's model on this host in a few seconds — a handful of
training steps (forward, loss, backward, fused AdamW step) on random token batches at two sequence lengths — and
returns the ratio of the plan's predicted time for those same examples to the measured time: the ``--speed`` that
makes the plan's estimate this host's. Random weights and tokens: step time does not depend on their values.
"""

from __future__ import annotations

import argparse
import math
import time

LENGTHS = (16, 64)  # short (TREC-like) and long (AG News-like) batches: the cost model is linear in length
WARMUP_STEPS = 2
TIMED_STEPS = 6


def predicted_seconds(examples: int, tokens: float, scale: float) -> float:
    """The plan's training cost of ``examples`` examples of ``tokens`` tokens (harness.grid.plan's model)."""
    from .plan import TRAIN_FACTOR, _eval_seconds

    return examples * _eval_seconds(tokens, scale) * TRAIN_FACTOR


def measure_speed(model_name: str, batch_size: int = 8, steps: int = TIMED_STEPS) -> float:
    """This host's speed-up over the reference machine for ``model_name`` (> 1: faster)."""
    import torch  # here, not at the top: the CLI imports this module for its ``--speed`` parser

    from ..run.model import TaskModel, load_pretrained
    from .plan import MINILM_PARAMETERS

    pretrained = load_pretrained(model_name)
    scale = sum(p.numel() for p in pretrained.state_dict.values()) / MINILM_PARAMETERS
    generator = torch.Generator().manual_seed(0)
    model = TaskModel(pretrained, "classification", 2, None, 0.1, head_seed=0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    vocab = pretrained.tokenizer.vocab_size
    predicted = measured = 0.0
    for length in LENGTHS:
        ids = torch.randint(1000, vocab, (batch_size, length), generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        labels = torch.randint(0, 2, (batch_size,), generator=generator)
        for step in range(WARMUP_STEPS + steps):
            if step == WARMUP_STEPS:
                start = time.perf_counter()
            loss = model.task_loss(model(**batch).logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        measured += time.perf_counter() - start
        predicted += predicted_seconds(steps * batch_size, length, scale)
    return predicted / measured


def parse_speed(text: str) -> float | str:
    """``--speed``: a number > 0, or ``auto`` (measured by :func:`measure_speed`)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0 or 'auto', got {text!r}")
    return value

"""Where and in which precision a run computes: the device choice (``auto`` → CUDA when visible) and the bf16
autocast used on a bf16-capable GPU. Shared by the training loop and the test scoring."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial

import torch

from ..core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def autocast_factory(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    use_bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    if not use_bf16:
        return contextlib.nullcontext
    return partial(torch.autocast, device_type=device.type, dtype=torch.bfloat16)

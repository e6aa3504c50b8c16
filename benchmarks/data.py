"""Loading task data through ``datasets``: the Parquet mirror, or the hub where it is reachable.

Where the data comes from, in order: ``--data-dir`` / ``$REGBENCH_DATA_DIR``; else ``shared/data`` beside the
checkout (``../shared/data`` from the repository root or the working directory). A mirror file that is missing
falls back to the hub name in the task YAML (works only with network access); if both fail, the error names the
file that was expected and how to point regbench at the data.

Tokenization is cached per (task + version + data file hash, tokenizer, max length): in memory for the process,
and on disk by ``datasets`` (fingerprinted ``map``), so a grid tokenizes each split once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from transformers import PreTrainedTokenizerBase

from regbench.harness.core.errors import DataError

from .sources import default_data_dir, describe_splits, resolve_data_dir, split_sizes, split_source  # noqa: F401
from .taskspec import TaskSpec

TOKENIZATION_VERSION = 2  # bump when the tokenization code changes (invalidates the on-disk caches)
datasets.disable_progress_bars()


@dataclass
class Split:
    """A loaded split: the raw ``datasets.Dataset`` and the file it came from (for provenance hashes)."""

    dataset: datasets.Dataset
    source: str  # parquet path, or "hub:<name>/<config>:<split>"
    part: str | None = None  # "pool" / "test" when the task re-splits one source split (``resplit``)


def load_split(task: TaskSpec, split: str, data_dir: str | Path | None = None) -> Split:
    """One split of a task (``split`` is a key of ``task.splits``), checked for the columns the task uses."""
    if split not in task.splits:
        raise DataError(f"task {task.name!r} has no {split!r} split (it has: {', '.join(task.splits)})")
    source_split, mirror, hub = split_source(task, split)
    root = resolve_data_dir(data_dir)
    expected = root / mirror / f"{source_split}.parquet" if (root and mirror) else None
    if expected is not None and expected.is_file():
        loaded = Split(_read_parquet(str(expected.resolve())), str(expected.resolve()))
    elif hub:
        loaded = _load_from_hub(task, hub, source_split, expected)
    else:
        where = expected or f"<data dir>/{mirror}/{source_split}.parquet (no data dir found)"
        raise DataError(f"task file {task.path}: splits.{split}: data file {where} is missing; "
                        "set REGBENCH_DATA_DIR or --data-dir to the Parquet mirror")
    _check_columns(task, loaded)
    entry = task.splits[split]
    if isinstance(entry, dict) and "part" in entry:
        loaded = _resplit_part(task, loaded, entry["part"])
    return loaded


def _resplit_part(task: TaskSpec, loaded: Split, part: str) -> Split:
    """One side of a fixed-seed cut of a source split (a test-only set → a training pool and a disjoint test part).
    The permutation depends only on the YAML's seed and the split's size, so every run sees the same two parts."""
    resplit = task.resplit or {}
    n = len(loaded.dataset)
    order = np.random.default_rng(int(resplit["seed"])).permutation(n)
    n_test = round(float(resplit["test_fraction"]) * n)
    chosen = order[:n_test] if part == "test" else order[n_test:]
    return Split(loaded.dataset.select(sorted(int(i) for i in chosen)), loaded.source, part)


@cache
def _read_parquet(path: str) -> datasets.Dataset:
    return datasets.Dataset.from_parquet(path)


def _load_from_hub(task: TaskSpec, hub: Any, source_split: str, expected: Path | None) -> Split:
    name, config = (hub[0], hub[1] if len(hub) > 1 else None) if isinstance(hub, list) else (hub, None)
    try:
        ds = datasets.load_dataset(name, config, split=source_split)
    except Exception as err:  # offline, unknown name, …: the message must say what to fix
        missing = f"mirror file {expected} is missing and " if expected else "no data directory was found and "
        raise DataError(f"{missing}hub dataset {name}/{config or ''} could not be loaded ({type(err).__name__}); "
                        "set REGBENCH_DATA_DIR to the Parquet mirror") from None
    return Split(ds, f"hub:{name}/{config or ''}:{source_split}")


def _check_columns(task: TaskSpec, split: Split) -> None:
    needed = [task.label_column, *task.input_columns()]
    have = split.dataset.column_names
    for column in needed:
        if column not in have:
            raise DataError(f"task file {task.path}: {_field_of(task, column)} needs column {column!r}, which "
                            f"{split.source} lacks (columns: {', '.join(have)})")


def _field_of(task: TaskSpec, column: str) -> str:
    """The YAML field that names a column, for error messages."""
    if column == task.label_column:
        return "label_column"
    fields = {"tokens_column": [task.tokens_column], "text_columns": task.text_columns,
              "choice_columns": task.choice_columns, "mark_spans": [c for p in task.mark_spans.values() for c in p]}
    return next((name for name, columns in fields.items() if column in columns), "text_templates")


@dataclass
class Encoded:
    """Tokenized examples of one split: a list of feature dicts (``idx`` = row in the source split)."""

    features: list[dict[str, Any]]
    source: str
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)

    def labels(self) -> list[Any]:
        return [f["labels"] for f in self.features]

    def subset(self, indices: list[int]) -> Encoded:
        return Encoded([self.features[i] for i in indices], self.source, dict(self.info))


_ENCODED: dict[tuple[Any, ...], Encoded] = {}


def encode_split(task: TaskSpec, split: str, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 data_dir: str | Path | None = None) -> Encoded:
    """Tokenize a whole split once (memoised in-process, fingerprinted on disk by ``datasets``)."""
    loaded = load_split(task, split, data_dir)
    key = (task.name, task.version, loaded.source, loaded.part, tokenizer.name_or_path, max_length,
           TOKENIZATION_VERSION)
    if key not in _ENCODED:
        fingerprint = hashlib.sha256(repr((key, loaded.dataset._fingerprint)).encode()).hexdigest()[:32]
        source = loaded.dataset
        if "idx" in source.column_names:  # else ``map`` casts our integer row ids back to a string source column
            source = source.remove_columns("idx")
        ds = source.map(
            _tokenize_fn(task, tokenizer, max_length), batched=True, with_indices=True,
            remove_columns=source.column_names, new_fingerprint=fingerprint,
        )
        _ENCODED[key] = Encoded(ds.to_list(), loaded.source)
    return _ENCODED[key]


def exclude_test_overlap(pool: Encoded, test: Encoded) -> list[int]:
    """Positions of pool examples whose tokens differ from every test example's (duplicates must not be trained on)."""
    seen = {content_key(f) for f in test.features}
    return [i for i, f in enumerate(pool.features) if content_key(f) not in seen]


def content_key(feature: dict[str, Any]) -> tuple[Any, ...]:
    """The token ids of an example as a hashable key (multiple choice: one row of ids per choice)."""
    ids = feature["input_ids"]
    return tuple(tuple(row) for row in ids) if ids and isinstance(ids[0], list) else tuple(ids)


def _tokenize_fn(task: TaskSpec, tokenizer: PreTrainedTokenizerBase, max_length: int):
    def tokenize(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        if task.is_token_task:
            words = batch[task.input_columns()[0]]  # the tokens column (taskspec requires one for token tasks)
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"] = [_align_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch[task.label_column])]
        elif task.is_multiple_choice:
            enc = _tokenize_choices(task, batch, tokenizer, max_length)
            enc["labels"] = batch[task.label_column]
        else:
            enc = tokenizer(*input_texts(task, batch), truncation=True, max_length=max_length)
            labels = batch[task.label_column]
            enc["labels"] = [float(y) for y in labels] if task.is_regression else labels
        enc["idx"] = indices
        return dict(enc)

    return tokenize


def input_texts(task: TaskSpec, batch: dict[str, list[Any]]) -> list[list[str]]:
    """The text segments of a batch: span markers first, then templates (or the text columns as they are)."""
    rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
    for row in rows:
        for column, (start, end) in task.mark_spans.items():
            row[column] = _mark(str(row[column]), int(row[start]), int(row[end]), task.extra.get("span_marker", "*"))
    if task.text_templates:
        return [[template.format(**row) for row in rows] for template in task.text_templates]
    return [[row[column] for row in rows] for column in task.text_columns]


def _mark(text: str, start: int, end: int, marker: str) -> str:
    """Wrap the character span [start, end) in ``marker`` so the encoder sees which occurrence is meant."""
    return f"{text[:start]}{marker}{text[start:end]}{marker}{text[end:]}"


def _tokenize_choices(task: TaskSpec, batch: dict[str, list[Any]], tokenizer: PreTrainedTokenizerBase,
                      max_length: int) -> dict[str, list[Any]]:
    """Multiple choice: (context, choice) pairs, one per answer column; each field is a list of K rows per example."""
    contexts = input_texts(task, batch)[0]
    k = len(task.choice_columns)
    firsts = [context for context in contexts for _ in range(k)]
    seconds = [batch[column][i] for i in range(len(contexts)) for column in task.choice_columns]
    flat = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    return {key: [values[i : i + k] for i in range(0, len(values), k)] for key, values in flat.items()}


def _align_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Label the first sub-token of each word; later sub-tokens and special tokens get -100 (ignored)."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(-100 if word is None or word == previous else tags[word])
        previous = word
    return labels

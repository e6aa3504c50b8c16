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
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from regbench.harness.errors import DataError

from .taskspec import TaskSpec

TOKENIZATION_VERSION = 1  # bump when the tokenization code changes (invalidates the on-disk caches)
datasets.disable_progress_bars()


def default_data_dir() -> Path | None:
    """``$REGBENCH_DATA_DIR``, else the ``shared/data`` mirror beside the checkout, else None."""
    env = os.environ.get("REGBENCH_DATA_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[1]
    for base in (repo_root, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is None:
        return default_data_dir()
    path = Path(data_dir)
    if not path.is_dir():
        raise DataError(f"data directory {path} does not exist; point --data-dir or REGBENCH_DATA_DIR at the Parquet mirror (e.g. ../shared/data)")
    return path


@dataclass
class Split:
    """A loaded split: the raw ``datasets.Dataset`` and the file it came from (for provenance hashes)."""

    dataset: datasets.Dataset
    source: str  # parquet path, or "hub:<name>/<config>:<split>"


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
        raise DataError(f"data file {where} for task {task.name!r} is missing; set REGBENCH_DATA_DIR or --data-dir to the Parquet mirror")
    _check_columns(task, loaded)
    return loaded


def split_source(task: TaskSpec, split: str) -> tuple[str, str | None, Any]:
    """(split name, mirror dir, hub name) of a split: a plain name uses the task's source; a mapping
    ``{split, mirror, hub}`` overrides it (e.g. QNLI trains on a pool from another mirror dir than its test set)."""
    entry = task.splits[split]
    if isinstance(entry, dict):
        return str(entry["split"]), entry.get("mirror", task.source.get("mirror")), entry.get("hub", task.source.get("hub"))
    return str(entry), task.source.get("mirror"), task.source.get("hub")


@cache
def _read_parquet(path: str) -> datasets.Dataset:
    return datasets.Dataset.from_parquet(path)


def _load_from_hub(task: TaskSpec, hub: Any, source_split: str, expected: Path | None) -> Split:
    name, config = (hub[0], hub[1] if len(hub) > 1 else None) if isinstance(hub, list) else (hub, None)
    try:
        ds = datasets.load_dataset(name, config, split=source_split)
    except Exception as err:  # offline, unknown name, …: the message must say what to fix
        missing = f"mirror file {expected} is missing and " if expected else "no data directory was found and "
        raise DataError(f"{missing}hub dataset {name}/{config or ''} could not be loaded ({type(err).__name__}); set REGBENCH_DATA_DIR to the Parquet mirror") from None
    return Split(ds, f"hub:{name}/{config or ''}:{source_split}")


def _check_columns(task: TaskSpec, split: Split) -> None:
    needed = [task.label_column, *task.text_columns] + ([task.tokens_column] if task.tokens_column else [])
    have = split.dataset.column_names
    for column in needed:
        if column not in have:
            raise DataError(f"task {task.name!r} needs column {column!r}, which {split.source} lacks (columns: {', '.join(have)})")


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
    key = (task.name, task.version, loaded.source, tokenizer.name_or_path, max_length, TOKENIZATION_VERSION)
    if key not in _ENCODED:
        fingerprint = hashlib.sha256(repr((key, loaded.dataset._fingerprint)).encode()).hexdigest()[:32]
        ds = loaded.dataset.map(
            _tokenize_fn(task, tokenizer, max_length), batched=True, with_indices=True,
            remove_columns=loaded.dataset.column_names, new_fingerprint=fingerprint,
        )
        _ENCODED[key] = Encoded(ds.to_list(), loaded.source)
    return _ENCODED[key]


def exclude_test_overlap(pool: Encoded, test: Encoded) -> list[int]:
    """Positions of pool examples whose tokens differ from every test example's (duplicates must not be trained on)."""
    seen = {tuple(f["input_ids"]) for f in test.features}
    return [i for i, f in enumerate(pool.features) if tuple(f["input_ids"]) not in seen]


def _tokenize_fn(task: TaskSpec, tokenizer: PreTrainedTokenizerBase, max_length: int):
    def tokenize(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        if task.is_token_task:
            enc = tokenizer(batch[task.tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
            enc["labels"] = [_align_labels(enc.word_ids(i), tags) for i, tags in enumerate(batch[task.label_column])]
        else:
            texts = [batch[column] for column in task.text_columns]
            enc = tokenizer(*texts, truncation=True, max_length=max_length)
            enc["labels"] = [float(y) for y in batch[task.label_column]] if task.is_regression else batch[task.label_column]
        enc["idx"] = indices
        return dict(enc)

    return tokenize


def _align_labels(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Label the first sub-token of each word; later sub-tokens and special tokens get -100 (ignored)."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(-100 if word is None or word == previous else tags[word])
        previous = word
    return labels

"""The typed model of a result record (pydantic v2): the one definition of what a record is, for the code that
writes records (``records.build_record``), the code that reads them (the leaderboard) and the JSON Schema published
beside the results (``results/record.schema.json``).

Versions (``schema_version``): 2 keeps the collapse measures under ``metrics.collapse`` with the other metrics.
Version 1 (every record written before issue 19) kept them in a top-level ``collapse`` section; :func:`upgrade`,
run by :class:`RunRecord` before it validates, moves that section under ``metrics`` and sets ``schema_version`` to 2,
so a version-1 file loads with the same values in the version-2 layout. ``meta_info.schema_version`` is provenance
and keeps the version the file was written with. Files are never rewritten: records are immutable.

Extra fields, chosen per section:
- closed (``extra="forbid"``): the top level, ``metrics``, ``metrics.collapse`` and ``predictions``. These are the
  layout: a field nobody declared there is a section patched in after the fact (how ``collapse`` once landed at the
  top level), which this model exists to stop. A new section or metric family is a schema change.
- open (``extra="allow"``): ``run_info``, ``train_info`` and ``meta_info`` and their small objects. They gather
  diagnostics and provenance that grow over time (``phases``, ``inference_parameters``, ``command`` came later;
  ``records.collect_provenance`` takes extra keys by design); the fields readers rely on are typed, unknown ones are
  kept verbatim (``records.validate_record`` still requires plain JSON) and the schema says so.

Types are strict and numbers are ``int | float``, never ``float``: pydantic would turn 3 into 3.0 (or "3" into 3),
and a record must read back as the very values written (byte-identical files). Keys starting with ``_`` are
in-process annotations (``_path``), which records never store; the model drops them.

``python -m regbench.harness.io.record_model`` writes the JSON Schema (``--check``: exit 1 when the file is stale).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from ..core.errors import RegbenchError

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "diverged")
PREDICTION_KINDS = ("label", "value", "tags")
SCHEMA_FILE = Path("results") / "record.schema.json"
_MOVED = {"collapse": "metrics.collapse"}  # top-level fields of older versions → where version 2 keeps them


@dataclass(frozen=True)
class MustBe:
    """What a field must be, in words, for error messages where the type alone says too little."""

    what: str


Number = StrictInt | StrictFloat


class _Open(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Noise(_Open):
    """Label noise of the run: the grid's axis as asked (``type``) and as applied to this task type (``rule``)."""

    rate: Number
    type: StrictStr | None = None
    rule: StrictStr | None = None
    realised_rate: Number | None = None
    flipped_sha256: StrictStr | None = None


class RunInfo(_Open):
    """What was run: keys, the resolved configuration (``config``, what the run key hashes), seed and outcome."""

    run_id: StrictStr
    task: StrictStr
    method: StrictStr
    seed: StrictInt
    status: Annotated[Literal["ok", "failed", "diverged"], MustBe(f"one of {', '.join(STATUSES)}")]
    config: dict[str, Any]
    size: Annotated[StrictStr, MustBe("a string, a size label such as k16")]
    noise: Noise
    cell_key: StrictStr | None = None
    error: StrictStr | None = None
    mlflow_run_id: StrictStr | None = None
    profile: StrictStr | None = None
    phase: StrictStr | None = None
    seeds: dict[str, StrictInt] | None = None
    params: dict[str, Any] | None = None


class DevPoint(_Open):
    """One dev evaluation: its (possibly fractional) epoch, the primary score and ``dev/<metric>`` entries."""

    epoch: Number
    dev_primary: Number | None


class TrainInfo(_Open):
    """How training went: dev curve, selected epoch, losses, timings, data facts."""

    dev_curve: Annotated[list[DevPoint], MustBe("a list of {epoch, dev_primary, ...}")]
    best_epoch: StrictInt | None
    majority_dev: Number | None = None
    majority_test: Number | None = None
    epoch_losses: list[dict[str, Number]] | None = None
    epoch_seconds: list[Number] | None = None
    eval_seconds: Number | None = None
    wall_seconds: Number | None = None
    extras_seconds: Number | None = None
    steps: StrictInt | None = None
    examples_seen: StrictInt | None = None
    samples_per_second: Number | None = None
    tokens_per_second: Number | None = None
    peak_memory_mb: Number | None = None
    data: dict[str, Any] | None = None
    stopped_at_epoch: Number | None = None
    eval_steps: list[StrictInt] | None = None
    steps_per_epoch: StrictInt | None = None
    inference_parameters: StrictInt | None = None
    phases: StrictStr | None = None


class Collapse(_Closed):
    """Representation-collapse measures at the selected checkpoint (harness/post/extras.py) and how they were taken."""

    metrics: dict[str, Number]
    settings: dict[str, Any]


class Metrics(_Closed):
    """Scores: test and dev metrics, OOD sets (``{set: {metric: value}}``) and collapse; null where not measured."""

    test: Annotated[dict[str, Number] | None, MustBe("null or an object of metric name → number")]
    dev: dict[str, Number] | None = None
    ood: dict[str, dict[str, Number]] | None = None
    collapse: Collapse | None = None


class Predictions(_Closed):
    """Per-example test predictions (and gold references) in compact form: label ids, values or tag-id lists."""

    kind: Literal["label", "value", "tags"]
    ids: list[StrictInt]
    pred: list[Any]
    ref: list[Any] | None = None


class Git(_Open):
    sha: StrictStr | None = None
    dirty: StrictBool | None = None


class ModelRef(_Open):
    name: StrictStr | None = None
    checksum: StrictStr | None = None


class MetaInfo(_Open):
    """Provenance: code, packages, model and data hashes, device, the command that made the record."""

    schema_version: Annotated[Literal[1, 2], MustBe("1 or 2 (the version the record was written with)")]
    regbench_version: StrictStr | None = None
    git: Git | None = None
    packages: dict[str, StrictStr | None] | None = None
    python: StrictStr | None = None
    platform: StrictStr | None = None
    device: StrictStr | None = None
    torch_threads: StrictInt | None = None
    determinism: dict[str, Any] | None = None
    model: ModelRef | None = None
    data_files: dict[str, StrictStr] | None = None
    created_at: StrictStr | None = None
    command: StrictStr | None = None
    environment: dict[str, Any] | None = None


class RunRecord(_Closed):
    """One regbench result record (one run), schema version 2. Version-1 files (top-level ``collapse``) are
    upgraded when loaded. A score that is not a finite number is written as the bare token NaN (Python's json), which
    JSON Schema cannot state: read records with a parser that accepts it (Python's json, pandas, allow_nan)."""

    model_config = ConfigDict(title="regbench run record")

    schema_version: Annotated[Literal[2], MustBe("1 or 2")]
    run_info: RunInfo
    train_info: TrainInfo
    metrics: Metrics
    predictions: Predictions | None
    meta_info: MetaInfo

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        _check_versions_agree(data)
        return upgrade(data)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able data, exactly the fields it was given (none filled in by defaults)."""
        return self.model_dump(exclude_unset=True)


def upgrade(data: Any) -> Any:
    """A record in the version-2 layout, without in-process ``_`` keys; a version-1 record's top-level ``collapse``
    moves under ``metrics``. Anything else comes back as it is, for the model to name what is wrong with it."""
    if not isinstance(data, Mapping):
        return data
    out = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
    version = out.get("schema_version")
    if type(version) is int and version == 1:  # type(): True == 1, and a bool is no version
        out["schema_version"] = 2
        if "collapse" in out:
            collapse = out.pop("collapse")
            if isinstance(out.get("metrics"), Mapping):
                out["metrics"] = {**out["metrics"], "collapse": collapse}
    return out


def _check_versions_agree(data: Any) -> None:
    """A record states the version it was written with twice (top level, ``meta_info``); two versions in one file
    mean it was edited or pieced together, and its layout cannot be trusted to be the one either version says."""
    meta = data.get("meta_info") if isinstance(data, Mapping) else None
    top, written = (data.get("schema_version"), meta.get("schema_version")) if isinstance(meta, Mapping) else (0, 0)
    if top in (1, 2) and written in (1, 2) and type(top) is type(written) is int and top != written:
        raise ValueError(f"schema_version {top} but meta_info.schema_version {written}: a record states the version "
                         "it was written with in both places")


def parse_record(data: Any) -> RunRecord:
    """Validate (and upgrade) a record; anything wrong is a one-line :class:`RegbenchError` naming the first bad field
    and what it must be."""
    if not isinstance(data, Mapping):
        raise RegbenchError(f"record must be a JSON object, got {type(data).__name__}")
    try:
        return RunRecord.model_validate(data)
    except ValidationError as err:  # named where the version-2 layout has it
        raise RegbenchError(_message(err.errors()[0], upgrade(data))) from None


def _message(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden":
        where = _MOVED.get(".".join(loc))
        moved = f" (version {SCHEMA_VERSION} keeps it under {where})" if where else ""
        return f"record has an unknown field {'.'.join(loc)}{moved}"
    path, what = _field_at(loc)
    if not path:
        return f"record is invalid: {error['msg']}"
    dotted = ".".join(path)
    if error["type"] == "missing" and path == loc:
        return f"record is missing {dotted} ({what})"
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return f"record {dotted} must be {what}, got {str(node)[:80]!r}"


def _field_at(loc: Sequence[str]) -> tuple[list[str], str]:
    """The deepest declared field along ``loc`` (stopping at lists and maps: their entries are reported as the whole
    field) and what it must be."""
    model: Any = RunRecord
    path: list[str] = []
    what = ""
    for part in loc:
        if model is None or part not in model.model_fields:
            break
        info = model.model_fields[part]
        path.append(part)
        what = next((m.what for m in info.metadata if isinstance(m, MustBe)), None) or _describe(info.annotation)
        model = _nested_model(info.annotation)
    return path, what


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return next((o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), None)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _describe(annotation: Any) -> str:
    """A type in words: ``int | float | None`` → "a number or null"."""
    if typing.get_origin(annotation) is Annotated:
        return _describe(typing.get_args(annotation)[0])
    if _is_union(annotation):
        options = [o for o in typing.get_args(annotation) if o is not type(None)]
        bare = {typing.get_args(o)[0] if typing.get_origin(o) is Annotated else o for o in options}
        words = "a number" if bare == {int, float} else " or ".join(_describe(o) for o in options)
        return words + (" or null" if len(options) < len(typing.get_args(annotation)) else "")
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    origin = typing.get_origin(annotation) or annotation
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list",
             dict: "an object"}
    if isinstance(origin, type) and issubclass(origin, BaseModel):
        return "an object"
    return names.get(origin, "a JSON value")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a version-2 record, as published in ``results/record.schema.json``."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **RunRecord.model_json_schema()}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the JSON Schema, or with ``--check`` say whether the file on disk is current (exit 1 when stale)."""
    parser = argparse.ArgumentParser(prog="python -m regbench.harness.io.record_model",
                                     description="Write (or check) the JSON Schema of regbench result records.")
    parser.add_argument("path", nargs="?", default=str(SCHEMA_FILE), help=f"schema file (default {SCHEMA_FILE})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the file is missing or stale")
    args = parser.parse_args(argv)
    path = Path(args.path)
    if args.check:
        current = path.is_file() and path.read_text(encoding="utf-8") == schema_text()
        print(f"{path} is {'current' if current else 'stale: run python -m regbench.harness.io.record_model'}")
        return 0 if current else 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

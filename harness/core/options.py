"""Settings declared once, on the dataclass field: default, help text, command-line flag and profile key.

    lr: float = setting(1e-4, "learning rate (default 1e-4, suited to MiniLM; tune per method)", flag="--lr")

``add_options`` turns chosen fields into argparse options (flag, default and help from the field; the destination
is the field's dotted name), ``values`` collects them back for the dataclass (running each field's ``parse``), and
``profile_keys`` lists the fields a profile YAML may set with their help. Like transformers' ``HfArgumentParser``
field metadata, but it keeps the repeatable options (``--param``, ``action="append"``) and the existing flag names,
and it imports no heavy library: the parser is built for every command, ``regbench ls`` included.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, cast

_NO_DEFAULT = dataclasses.MISSING


def setting(default: Any = _NO_DEFAULT, help: str = "", *, flag: str | None = None, profile_key: bool = False,
            profile_help: str | None = None, choices: Iterable[str] | None = None, parse: Callable | None = None,
            action: str | None = None, metavar: str | None = None, cli_default: Any = _NO_DEFAULT,
            default_factory: Any = _NO_DEFAULT) -> Any:
    """A dataclass field that also says how it is set from the command line (``flag``) and from a profile
    (``profile_key``: the YAML key is the field's name; ``profile_help`` its line in the profile key list).
    ``cli_default``: what the option shows and passes when it differs from the field's default (``--train-size``
    keeps the text "64")."""
    metadata = {"help": help, "flag": flag, "profile_key": profile_key, "profile_help": profile_help or help,
                "choices": tuple(choices) if choices else None, "parse": parse, "action": action,
                "metavar": metavar, "cli_default": cli_default}
    if default_factory is not _NO_DEFAULT:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _field(cls: type, dotted: str) -> tuple[dataclasses.Field, Any]:
    """The field behind ``dotted`` (``"train.lr"``: the ``lr`` field of the dataclass in the ``train`` field) and
    its default."""
    head, _, rest = dotted.partition(".")
    found = {f.name: f for f in dataclasses.fields(cls)}[head]
    if rest:
        return _field(cast(type, found.default_factory), rest)
    if found.default is not _NO_DEFAULT:
        return found, found.default
    return found, cast(Callable[[], Any], found.default_factory)()


def add_options(parser: argparse.ArgumentParser, cls: type, names: Iterable[str], *,
                required: Iterable[str] = ()) -> None:
    """Add the options of ``cls``'s fields ``names`` (dotted for nested configs), in that order."""
    required = set(required)
    for dotted in names:
        found, default = _field(cls, dotted)
        meta = found.metadata
        flag = meta["flag"] or "--" + dotted.rpartition(".")[2].replace("_", "-")
        kwargs: dict[str, Any] = {"dest": dotted, "help": meta["help"] or None}
        if meta["action"]:
            kwargs["action"] = meta["action"]
            kwargs["default"] = [] if meta["action"] == "append" else default
            if meta["action"] == "store_false":
                kwargs["default"] = True
        else:
            kwargs["default"] = default if meta["cli_default"] is _NO_DEFAULT else meta["cli_default"]
            kwargs["type"] = None if meta["parse"] else _scalar_type(found, default)  # parse: in values()
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        elif meta["action"] not in ("store_true", "store_false"):  # what argparse would show for the flag's name
            kwargs["metavar"] = meta["metavar"] or flag.lstrip("-").replace("-", "_").upper()
        if dotted in required:
            kwargs.pop("default")
            kwargs["required"] = True
        parser.add_argument(flag, **{k: v for k, v in kwargs.items() if v is not None or k == "default"})


def _scalar_type(found: dataclasses.Field, default: Any) -> Callable | None:
    annotation = str(found.type)
    for name, kind in (("int", int), ("float", float)):
        if annotation.startswith(name) or isinstance(default, kind) and not isinstance(default, bool):
            return kind
    return None


def values(args: argparse.Namespace, cls: type, names: Iterable[str], prefix: str = "") -> dict[str, Any]:
    """``{field name: parsed value}`` of the options ``names`` that belong to the config at ``prefix`` (``""``: the
    top-level dataclass ``cls``; ``"train."``: the one in its ``train`` field). A field's ``parse`` turns the text
    into its value here, after argparse, so its error is a regbench one-line error like any other
    (``--param a=1 --param b=2`` → ``{"a": 1, "b": 2}``; ``--train-size k16`` → ``"k16"``)."""
    found = {}
    for dotted in names:
        if not dotted.startswith(prefix) or "." in dotted[len(prefix):]:
            continue
        field, _ = _field(cls, dotted)
        value = getattr(args, dotted)
        if field.metadata["parse"]:
            value = field.metadata["parse"](value)
        found[dotted[len(prefix):]] = value
    return found


def profile_keys(cls: type) -> dict[str, str]:
    """``{YAML key: help}`` of the fields of ``cls`` a profile may set, in declaration order."""
    return {f.name: f.metadata["profile_help"] for f in dataclasses.fields(cls) if f.metadata.get("profile_key")}

"""The one YAML loader of regbench: PyYAML's safe loader with YAML 1.2 floats.

PyYAML implements YAML 1.1, whose float pattern needs a dot: ``1e-3`` loads as the *string* "1e-3" while
``1.0e-3`` is a float. Learning rates and other small numbers are naturally written the first way, and a string
where a number belongs either fails far from the file or, worse, compares as text. :class:`Loader` swaps the float
resolver for the YAML 1.2 core-schema one (``1e-3``, ``1E5``, ``.5``, ``-2.``, ``.inf``, ``.nan``), keeping 1.1's
underscores (``1_000.5``); integers, booleans and everything else resolve as before. Every YAML file regbench reads
(profiles, task files) goes through :func:`load` / :func:`load_text`, so a number means the same thing everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 core schema floats (plus 1.1's digit separators). A plain integer has neither a dot nor an exponent and
# does not match, so it still resolves to int.
FLOAT_PATTERN = re.compile(r"""^(?:
      [-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?   # 1.5  .5  1.  1.5e-3  (a dot)
    | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                      # 1e-3  2E5          (an exponent, no dot)
    | [-+]?\.(?:inf|Inf|INF)
    | \.(?:nan|NaN|NAN)
    )$""", re.X)


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose implicit floats follow YAML 1.2 (``1e-3`` is a float, not a string)."""


# add_implicit_resolver below copies the inherited table into Loader first, so SafeLoader itself is unchanged.
Loader.add_implicit_resolver(FLOAT_TAG, FLOAT_PATTERN, list("-+0123456789."))
Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != FLOAT_TAG or regexp is FLOAT_PATTERN]
    for first, resolvers in Loader.yaml_implicit_resolvers.items()
}


def _lone_dot(loader: Loader, node: yaml.ScalarNode) -> Any:
    """A scalar that is only a dot or signs and dots (``.``, ``-.``) matches the pattern but is no number."""
    value = loader.construct_scalar(node)
    try:
        return loader.construct_yaml_float(node)
    except ValueError:
        return value


Loader.add_constructor(FLOAT_TAG, _lone_dot)


def load_text(text: str) -> Any:
    """Parse YAML text with regbench's loader (raises ``yaml.YAMLError`` on bad syntax, like ``yaml.safe_load``)."""
    return yaml.load(text, Loader=Loader)  # Loader is a SafeLoader subclass: no arbitrary objects


def describe_error(err: yaml.YAMLError) -> str:
    """A YAML syntax error in one line, with where it is: "expected ',' or ']', but got '<stream end>' (line 15,
    column 8)" (PyYAML's own text spreads over several lines and leads with the context, not the problem)."""
    problem = getattr(err, "problem", None) or (str(err).strip().splitlines() or [type(err).__name__])[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def load(path: str | Path) -> Any:
    """Parse a YAML file with regbench's loader."""
    return load_text(Path(path).read_text())

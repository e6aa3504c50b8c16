"""User-facing errors: one line that names what is wrong and what would be right.

The CLI prints ``str(error)`` of a :class:`RegbenchError` without a traceback and exits with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RegbenchError(Exception):
    """Bad input or environment, explained in one line for the user."""


class ConfigError(RegbenchError):
    """A configuration value (CLI flag, task YAML, profile, method parameter) is invalid."""


class DataError(RegbenchError):
    """The data a task needs is missing or malformed."""

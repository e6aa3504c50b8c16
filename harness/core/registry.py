"""One small generic registry for tasks, methods and metrics.

Entries are registered by name; lookups of unknown names fail with a "did you mean" suggestion. A registry may be
*lazy*: a loader callback fills it on the first lookup (task YAMLs are parsed, method modules imported, only when
somebody asks), so importing regbench stays cheap.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → entry mapping with helpful errors.

    Args:
        kind: what the entries are ("task", "method", …), used in error messages.
        loader: called once, before the first lookup, to register the built-in entries.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._loader = loader
        self._loaded = loader is None

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        key = self._normalise(name)
        if not replace and key in self._entries and self._entries[key] is not entry:
            raise ConfigError(f"{self.kind} {name!r} is already registered; pick another name or pass replace=True")
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (tests that register throw-away entries clean up with this)."""
        self._entries.pop(self._normalise(name), None)

    def get(self, name: str) -> T:
        self._ensure_loaded()
        key = self._normalise(name)
        if key not in self._entries:
            raise ConfigError(self._unknown_message(name))
        return self._entries[key]

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and self._normalise(name) in self._entries

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        yield from sorted(self._entries.items())

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # set first: a loader that looks entries up must not recurse
            assert self._loader is not None
            self._loader()

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        close = difflib.get_close_matches(self._normalise(name), known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"

    @staticmethod
    def _normalise(name: str) -> str:
        return canonical_name(name)


def canonical_name(name: str) -> str:
    """The key a registry files ``name`` under (and lists it by)."""
    # Names are case-insensitive and '-'/'_' are interchangeable: users type "std++", "STD++", "repina-i".
    return name.strip().lower().replace("-", "_")

"""regbench harness: the training loop, method protocol, registries, records, tracking and CLI."""

from .core.version import __version__

__all__ = ["__version__"]

"""Performance benchmarks (``nox -s perf``): each script measures one target and writes ``results/perf/<name>.md``."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out: str | Path) -> None:
    """Write a report's lines to ``out`` (creating its folder) and echo them."""
    text = "\n".join(lines)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)

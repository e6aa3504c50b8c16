"""Where methods come from: the built-in method packages and the entry-point group of third-party ones.

Both the registry (harness.run.method imports every module of these packages) and the static listing behind
``regbench ls methods`` (harness.catalogue reads the same modules without importing them) read this one place.
"""

from __future__ import annotations

BUILTIN_METHOD_PACKAGES: tuple[str, ...] = ("regbench.baselines", "regbench.regularizers")
ENTRY_POINT_GROUP = "regbench.methods"  # pyproject: [project.entry-points."regbench.methods"] name = "module:object"

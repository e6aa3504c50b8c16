"""What every part of regbench shares and that depends on no other part: errors and their one-line messages,
registries with "did you mean", YAML numbers, the version, where methods come from, masked URLs.

``regbench.benchmarks`` (tasks, data, metrics) imports only this sub-package of the harness, so the harness can
import benchmarks without a cycle (harness/README.md).
"""

"""Tools for method authors, in the spirit of ``optuna.testing``: the conformance suite every registered method must
pass (``python -m regbench.harness.testing.conformance``) and the probes it is built on."""

"""regbench harness: the training loop, method protocol, registries, records, tracking and CLI."""

"""What a final run measures after training, on the trained model: OOD evaluation (ood), representation-collapse
probes (collapse), and the step that attaches both to a record (extras)."""

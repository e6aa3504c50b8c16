"""Where results go: immutable run records (records; their typed model and JSON Schema: record_model) and the
MLflow mirror (tracking, mlflow_runs)."""

"""One training run: the configuration (train), the loop and its evaluation schedule, the method hook protocol
(method), the model with its task heads (model), batching and devices. Knows nothing of grids, records or MLflow."""

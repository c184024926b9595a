"""MLflow: runs and their metrics, the model registry, the model served from it."""

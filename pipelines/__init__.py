"""Thin Prefect flows, one per DVC stage: read and write stage artifacts, call `components`, log to MLflow."""

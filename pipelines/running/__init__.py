"""Running stages: the runtime environment, Prefect orchestration, the warm stage server, the scheduled
pipeline, and the stages' code deps."""

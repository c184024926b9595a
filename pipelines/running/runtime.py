"""Process environment for every entry point: no telemetry, no network, quiet TensorFlow.

Set as defaults (a user's explicit environment wins) before Prefect, MLflow, GX, DVC or TensorFlow are
imported, and inherited by the processes they start (dvc, each stage, the Prefect server).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

EXECUTION_ENV = "MLSTRATEGY_EXECUTION_ID"

ENVIRONMENT_DEFAULTS = {
    # Nothing phones home: Prefect, MLflow, GX and DVC usage analytics are off.
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    # An ephemeral Prefect server takes ~20 s to start on 2 cores; Prefect's default timeout is shorter.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Weights and data are never downloaded at run time.
    "HF_HUB_OFFLINE": "1",
    # TensorFlow's C++ log: 3 keeps only FATAL, so a healthy CPU run prints no E0000 line (at 2, "failed
    # call to cuInit" on every machine without a GPU). The few I0000 lines TensorFlow writes while its
    # libraries load, before absl's log is initialised (oneDNN, "Could not find cuda drivers"), are
    # printed whatever this says. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything again.
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "KERAS_BACKEND": "tensorflow",
}


def script(name: str) -> str:
    """A console script of this Python environment (dvc, prefect, mlflow), found without PATH."""
    return str(Path(sys.executable).with_name(name))


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a `dvc` subprocess: dvc runs each stage as `mlstrategy stage NAME`, so this
    Python environment's scripts come first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **(extra or {}), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def configure_environment() -> None:
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) that holds dvc.yaml."""
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "dvc.yaml").is_file():
            return directory
    from pipelines.errors import UserError

    raise UserError(f"no dvc.yaml in {here} or above: run mlstrategy inside the project")


def execution_id() -> str:
    """The id shared by every stage of one pipeline execution.

    `mlstrategy run` exports it; under a plain `dvc repro` it is derived from the dvc process that runs
    the stages (its pid and start time), so all stages of that repro agree without talking to each other.
    """
    if os.environ.get(EXECUTION_ENV):
        return os.environ[EXECUTION_ENV]
    import psutil

    for process in psutil.Process().parents():
        try:
            if any(Path(arg).name == "dvc" for arg in process.cmdline()[:3]):
                return f"dvc-{process.pid}-{int(process.create_time() * 1000)}"
        except psutil.Error:
            continue
    return uuid.uuid4().hex

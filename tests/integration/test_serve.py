"""The served deployment against a real Prefect server (`prefect server start` on 127.0.0.1, a free port, a
home of its own): `mlstrategy serve --interval` runs scheduled_pipeline on schedule, and keeps doing so after
the server restarts. Runs are read back through the server's REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.running.orchestration import api_healthy
from tests.conftest import copy_project, free_port, start_server, stop_process

BIN = Path(sys.executable).parent


def prefect_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return start_server(command, f"http://127.0.0.1:{port}/api", log, env)


def completed_runs(api: str, deployment: str) -> list[datetime]:
    """Start times of the deployment's completed flow runs, from the REST API."""
    body = {
        "deployments": {"name": {"any_": [deployment]}},
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
    }
    request = urllib.request.Request(
        f"{api}/flow_runs/filter",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            runs = json.load(response)
    except OSError:
        return []
    return [datetime.fromisoformat(run["start_time"]) for run in runs if run.get("start_time")]


def wait_for_run(api: str, deployment: str, after: datetime, timeout_s: float = 150) -> datetime:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        later = [when for when in completed_runs(api, deployment) if when > after]
        if later:
            return min(later)
        time.sleep(1)
    pytest.fail(f"no completed run of {deployment} after {after} within {timeout_s} s")


def test_a_served_deployment_runs_on_schedule_and_survives_a_server_restart(tmp_path):
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    (project / "data/landing").mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_API_URL": api,
        "MLSTRATEGY_STAGE_SERVER": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tmp_path / "server.log"
    server = prefect_server(env, port, log)
    serving = subprocess.Popen(
        [str(BIN / "mlstrategy"), "serve", "--interval", "3", "--name", "test"],
        cwd=project,
        env=env,
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        first = wait_for_run(api, "test", datetime.fromisoformat("2000-01-01T00:00:00+00:00"))
        stop_process(server)
        assert not api_healthy(api)
        server = prefect_server(env, port, log)
        restarted = datetime.now().astimezone()
        after = wait_for_run(api, "test", restarted)
        assert after > first and serving.poll() is None  # the served process outlived the restart
    finally:
        stop_process(serving)
        stop_process(server)
    text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "scheduled run: nothing new: nothing retrained" in text

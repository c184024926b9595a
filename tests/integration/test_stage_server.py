"""The warm stage server: a stage forked from it behaves as the same stage in a cold process. One server for
the module, on a copy of the project whose splits are made."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from pipelines.running import stage_server
from tests.conftest import copy_of

MLSTRATEGY = str(Path(sys.executable).with_name("mlstrategy"))


def stage(name: str, env: dict, warm: bool) -> subprocess.CompletedProcess:
    env = {**env, stage_server.SWITCH: "1" if warm else "0"}
    return subprocess.run([MLSTRATEGY, "stage", name], env=env, capture_output=True, text=True)


def weights_digest() -> str:
    with zipfile.ZipFile("models/model.keras") as archive:
        return hashlib.md5(archive.read("model.weights.h5")).hexdigest()


@pytest.fixture(scope="module")
def served(split_project, tmp_path_factory, prefect_api):
    """One warm stage server for the module, on a copy of the project whose splits are made."""
    project = copy_of(split_project, tmp_path_factory.mktemp("stage-server"))
    env = {**os.environ, "PREFECT_API_URL": prefect_api, stage_server.SWITCH: "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLSTRATEGY_EXECUTION_ID", None)
    subprocess.run(
        [MLSTRATEGY, "stage-server", "start"], cwd=project, env=env, check=True, capture_output=True
    )
    path = stage_server.socket_path(project)
    deadline = time.monotonic() + 180
    while not stage_server.running(project):
        assert time.monotonic() < deadline, path.with_suffix(".log").read_text()
        time.sleep(0.5)
    yield project, env, path.with_suffix(".log")
    subprocess.run(
        [MLSTRATEGY, "stage-server", "stop"], cwd=project, env=env, check=True, capture_output=True
    )
    assert not path.exists() and not stage_server.running(project)


class Log:
    """The server's log from the start of a test on."""

    def __init__(self, path: Path) -> None:
        self.path, self.start = path, path.stat().st_size

    def read_text(self) -> str:
        return self.path.read_bytes()[self.start :].decode(errors="replace")


@pytest.fixture
def server(served, monkeypatch):
    """The module's server, its project as the working directory; its environment and the log's new lines."""
    project, env, log = served
    monkeypatch.chdir(project)
    return env, Log(log)


def test_warm_stage_gives_the_cold_result(server):
    env, log = server
    done = stage("train", env, warm=False)
    assert done.returncode == 0, done.stderr[-2000:]
    cold = weights_digest()
    done = stage("train", env, warm=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Finished in state Completed()" in done.stderr
    assert "served: mlstrategy stage train" in log.read_text()
    assert weights_digest() == cold


def test_exit_status_and_message_come_back(server):
    env, log = server
    done = stage("diagnose", env, warm=True)
    assert done.returncode == 1
    assert "missing; it is produced by the 'evaluate' stage" in done.stderr
    assert "served: mlstrategy stage diagnose" in log.read_text() and "exit 1" in log.read_text()


def test_a_different_environment_runs_cold(server):
    env, log = server
    Path("data/ingested/dataset.parquet").unlink()
    done = stage("ingest", {**env, "MLFLOW_TRACKING_URI": "sqlite:///elsewhere.db"}, warm=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused (different environment): mlstrategy stage ingest" in log.read_text()
    assert Path("data/ingested/dataset.parquet").is_file()


def test_a_malformed_request_does_not_stop_the_server(server):
    import socket

    for garbage in (b"", b"not a request"):  # a bare connect-and-close used to end the server
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bad:
            bad.connect(str(stage_server.socket_path(Path.cwd())))
            bad.sendall(garbage)
    env, log = server
    done = stage("ingest", env, warm=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "served: mlstrategy stage ingest" in log.read_text()

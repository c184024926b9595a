"""Shared fixtures: a throw-away copy of the project to run stages in, and one Prefect API for the session."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The stages read these; set before anything imports Prefect, MLflow, GX or TensorFlow.
from pipelines.running.runtime import configure_environment  # noqa: E402

configure_environment()
# Prefect's flow machinery, imported once before any test captures the output: imported for the first time
# inside a test that captures it, after an MLflow model registration, it brought the interpreter down on a
# write to a closed stream ("lost sys.stderr").
from prefect import flow  # noqa: E402, F401

# Tests run every stage in its own cold process unless a test starts a stage server itself.
os.environ.setdefault("MLSTRATEGY_STAGE_SERVER", "0")

# Small and fast: the tests check behaviour, not model quality.
FAST_PARAMS = {
    # The MLP: these tests check the pipeline's behaviour, not the model family; test_flows' whole run
    # keeps the default family (a CNN on the bundled images).
    "train": {"epochs": 3, "hidden_units": [32], "family": "mlp"},
    "evaluate": {"latency_calls": 20},
    "improve": {"max_iterations": 2, "trials": 1},
    "sweep": {"rounds": 1, "trials": 2, "workers": 1},
    "analyze": {"label_folds": 2},
    "compare": {"sizes": [1.0], "min_steps": 20},
}


# Smaller still, for the modules that run the whole DAG with DVC (several times): they check its way
# through, not the model's quality.
DAG_PARAMS = {
    "train": {"epochs": 2, "hidden_units": [16]},
    "improve": {"max_iterations": 1},
    "analyze": {"label_folds": 0},
}


def deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def write_params(project: Path, override: dict) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(deep_update(params, override), sort_keys=False))


def copy_project(target: Path) -> Path:
    """The files a fresh clone has (code, params, DVC config), without any generated output."""
    for name in ("params.yaml", "dvc.yaml", "pyproject.toml", ".gitignore", ".dvcignore"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "tmp", "cache")
    for name in ("components", "pipelines", ".dvc"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    (target / "data").mkdir()
    for name in ("relabels.csv", "contract.yaml", "batches/README.md", "batches/.gitignore"):
        (target / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "data" / name, target / "data" / name)
    (target / "mlflow").mkdir()
    return target


def git_repository(project: Path) -> Path:
    """`project` as a git repository with everything in it committed, as a clone is."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=project, check=True)
    return project


def command_env(prefect_api: str) -> dict[str, str]:
    """The environment of a user's shell for the CLI (`mlstrategy`, `dvc`): the venv first on PATH, the
    session's Prefect API, the project's own MLflow store, stages forked from a warm process as `make run`
    does."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PREFECT_API_URL": prefect_api}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLSTRATEGY_EXECUTION_ID", None)
    env["MLSTRATEGY_STAGE_SERVER"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: list[str], url: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a server (`prefect server start`, `mlflow server`) in a session of its own, logging to `log`,
    and wait until `url`/health answers."""
    from pipelines.running.orchestration import api_healthy

    server = subprocess.Popen(
        command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not api_healthy(url):
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return server


def stop_process(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, and its children: TERM, then KILL after 30 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def enter(project: Path, monkeypatch: pytest.MonkeyPatch, execution: str | None = None) -> Path:
    """Work in `project`: its directory, its own MLflow store, and the execution id `execution`."""
    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    if execution:
        monkeypatch.setenv("MLSTRATEGY_EXECUTION_ID", execution)
    return project


def digest(*paths: Path) -> dict[str, str]:
    """{file: hash} of every file at or under `paths` (missing ones left out): outputs before and after."""
    found = {}
    for path in map(Path, paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                found[str(file)] = hashlib.blake2b(file.read_bytes()).hexdigest()
    return found


def prepared_project(
    target: Path, stages: tuple[str, ...] = ("ingest", "validate", "split"), params: dict | None = None
) -> Path:
    """A copy of the project in `target` with FAST_PARAMS (and `params` over them), whose first `stages`
    have run (in process, against the session's Prefect API): the start of a module's tests that share
    one set of splits."""
    from pipelines.running.orchestration import run_stage
    from pipelines.store.params import load_params

    copy_project(target)
    write_params(target, FAST_PARAMS)
    write_params(target, params or {})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(target)
        patch.setenv("MLSTRATEGY_EXECUTION_ID", f"prepared-{target.name}")
        params = load_params()
        for name in stages:
            run_stage(name, params)
    return target


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect API (Prefect's own test harness) for every flow of the session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(
        server_startup_timeout=int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    ):
        yield PREFECT_API_URL.value()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the project with fast params, as the working directory."""
    copy_project(tmp_path)
    write_params(tmp_path, FAST_PARAMS)
    return enter(tmp_path, monkeypatch)


def pytest_terminal_summary(terminalreporter) -> None:
    """The bad-input catalogue's count, in the test output: how many of its cases passed."""
    reports = [
        report
        for outcome in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(outcome, [])
        if "test_bad_input.py::" in report.nodeid and (report.when == "call" or not report.passed)
    ]
    if reports:
        passed = sum(report.passed for report in reports)
        terminalreporter.write_line(f"bad-input catalogue: {passed} of {len(reports)} cases pass")

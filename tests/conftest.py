"""Shared fixtures: a throw-away copy of the project to run stages in, and one Prefect API for the session."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# The tests never read the user's Prefect profiles, nor start the local server a user's run would (port
# 4200 in ~/.prefect, shared with anyone else on the machine): a Prefect home of their own, and the
# session's API (`prefect_api`) exported to every stage and subprocess.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mlstrategy-tests-prefect-")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("PREFECT_PROFILE", None)

# Under pytest-xdist each worker's thread pools (TensorFlow, BLAS, OpenMP), and those of the stages it
# starts, get the worker's share of the cores: pools as wide as the machine in every worker spin against
# each other, and a module of stages ran 4.5 times slower beside a training one than alone (169 s, 37 s).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_SHARE = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))
for _pool in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_pool, _SHARE)

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


# Over FAST_PARAMS, the session's one whole run of the pipeline on the bundled data (`pipeline`): the
# default model family, a CNN on the bundled images (one small convolution block).
PIPELINE_PARAMS = {"train": {"family": "auto", "cnn": {"filters": [8]}}}

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


# What a clone of the project holds in git (the rest, outputs included, is DVC's or generated).
SOURCES = (
    "params.yaml",
    "dvc.yaml",
    "pyproject.toml",
    ".gitignore",
    ".dvcignore",
    ".dvc",
    "components",
    "pipelines",
    "data/contract.yaml",
    "data/relabels.csv",
)


def git_repository(project: Path, sources_only: bool = False) -> Path:
    """`project` as a git repository with everything in it committed, as a clone is; `sources_only`: only
    SOURCES, for a copy whose stages have run outside DVC (their outputs are DVC's to track)."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    paths = [name for name in SOURCES if (project / name).exists()] if sources_only else ["-A"]
    subprocess.run([*git, "add", *paths], cwd=project, check=True)
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


DATA_STAGES = ("ingest", "validate", "split")


def run_stages(project: Path, stages: tuple[str, ...]) -> Path:
    """Run `stages` in `project` (in process, against the session's Prefect API), as execution
    prepared-NAME (NAME: the project folder's)."""
    from pipelines.running.orchestration import run_stage
    from pipelines.store.params import load_params

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLSTRATEGY_EXECUTION_ID", f"prepared-{project.name}")
        params = load_params()
        for name in stages:
            run_stage(name, params)
    return project


def prepared_project(target: Path, stages: tuple[str, ...] = DATA_STAGES, params: dict | None = None) -> Path:
    """A copy of the project in `target` with FAST_PARAMS (and `params` over them), whose first `stages`
    have run: the start of a module's tests that share one set of splits."""
    copy_project(target)
    write_params(target, FAST_PARAMS)
    write_params(target, params or {})
    return run_stages(target, stages)


def copy_of(source: Path, target: Path) -> Path:
    """`target` as a copy of the project `source`, outputs and all, to change without running its stages
    again; with an MLflow store of its own (an experiment records its artifact folder as an absolute path,
    which would be the source's)."""
    store = source / "mlflow"
    shutil.copytree(
        source,
        target,
        symlinks=True,
        dirs_exist_ok=True,
        ignore=lambda folder, names: names if Path(folder) == store else [],
    )
    return target


def register_version(model_file: Path, run_name: str = "a test model") -> str:
    """Register the Keras model at `model_file` as the pipeline registers its models (a pyfunc taking raw
    rows, from a run of its own, aliased challenger), in the working directory's project and tracking
    store; returns the version."""
    import pandas as pd

    from pipelines.store.params import load_params
    from pipelines.store.tables import classes
    from pipelines.tracking import registry, runs

    params = load_params()
    train = pd.read_parquet("data/splits/train.parquet")
    schema = registry.serving_schema(params.data, train, classes(params.data))
    client = runs.client(params.mlflow.experiment)
    experiment = client.get_experiment_by_name(params.mlflow.experiment).experiment_id
    run = client.create_run(experiment, run_name=run_name).info.run_id
    version = registry.register(
        params.mlflow.experiment, params.mlflow.registered_model, run, model_file, schema, train
    )
    client.set_terminated(run)
    return version


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect API (Prefect's own test harness) for every flow of the session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(
        server_startup_timeout=int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])
    ):
        # Exported too: a stage run through the CLI (`main`, a subprocess) reads PREFECT_API_URL from the
        # environment, and without it would start the user's local server.
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        try:
            yield PREFECT_API_URL.value()
        finally:
            os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """A real MLflow tracking server (`mlflow server` on 127.0.0.1, a free port) with its own store."""
    root = tmp_path_factory.mktemp("mlflow-server")
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1"]
    command += ["--port", url.rsplit(":", 1)[1], "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--default-artifact-root", (root / "artifacts").as_uri()]
    server = start_server(command, url, root / "server.log")
    yield url
    stop_process(server)


@dataclass(frozen=True)
class Pipeline:
    """The session's whole run: the project (a git repository), the environment its `dvc repro` ran in,
    that run's output, and the MLflow server it was tracked on."""

    project: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess
    mlflow: str


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory, prefect_api, mlflow_server) -> Iterator[Pipeline]:
    """Every stage once for the session: `dvc repro` in a git repository holding a copy of the project
    (FAST_PARAMS and PIPELINE_PARAMS), from a user's shell (`command_env`, stages forked from a warm stage
    server), tracked on a real MLflow server. The flow tests and the end-to-end tests read it and leave it
    as they found it; those that change it run last (`changes_pipeline`) or work on a copy (`copy_of`)."""
    project = copy_project(tmp_path_factory.mktemp("pipeline"))
    write_params(project, FAST_PARAMS)
    write_params(project, PIPELINE_PARAMS)
    git_repository(project)
    env = {**command_env(prefect_api), "MLFLOW_TRACKING_URI": mlflow_server}
    bin_dir = Path(sys.executable).parent
    try:
        first = subprocess.run(
            [str(bin_dir / "dvc"), "repro"], cwd=project, env=env, capture_output=True, text=True
        )
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        yield Pipeline(project, env, first, mlflow_server)
    finally:
        subprocess.run(
            [str(bin_dir / "mlstrategy"), "stage-server", "stop"], cwd=project, env=env, check=False
        )


@pytest.fixture(scope="session")
def split_project(tmp_path_factory, prefect_api) -> Path:
    """The project with FAST_PARAMS whose ingest, validate and split have run, once for the session: the
    modules that start from the bundled data's splits take a copy (`copy_of`)."""
    return prepared_project(tmp_path_factory.mktemp("split"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the project with fast params, as the working directory."""
    copy_project(tmp_path)
    write_params(tmp_path, FAST_PARAMS)
    return enter(tmp_path, monkeypatch)


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "changes_pipeline: changes the session's whole run (`pipeline`): runs after every other test",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """The tests that change the session's whole run go last, in their order: every test that reads it
    has read it by then, and none of them runs the pipeline again for a copy.

    With pytest-xdist (`make test`: `--dist loadgroup`), one worker takes a whole group: every test of
    the session's whole run (`pipeline`) is one group, so the run happens once and the changing tests
    still come last; every other module is a group of its own, so its module fixtures run once."""
    changing = [item for item in items if item.get_closest_marker("changes_pipeline")]
    if changing:
        items[:] = [item for item in items if item not in changing] + changing
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            group = "pipeline" if "pipeline" in item.fixturenames else item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(group))
    # Longest groups first (`make test` keeps this order: --no-loadscope-reorder), the short ones filling in
    # around them, so that no worker is left with a long group when the other is done.
    items.sort(key=lambda item: _rank(item.get_closest_marker("xdist_group").args[0]))


# The groups that take minutes, longest first (as measured on 2 cores): xdist's own order is by number of
# tests, which put two of these last and left one worker idle for two minutes.
LONGEST_FIRST = (
    "pipeline",
    "tests/e2e/test_own_table.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_sweep_stage.py",
    "tests/integration/test_split_stage.py",
    "tests/integration/test_bad_input.py",
    "tests/integration/test_serve.py",
    "tests/integration/test_stage_server.py",
    "tests/unit/test_scenarios.py",
    "tests/unit/test_course3_options.py",
)


def _rank(group: str) -> int:
    return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_runtest_makereport(item, call) -> None:
    """A catalogue's case (`@pytest.mark.catalogue(name)`) says its catalogue in its report, which the
    terminal summary counts (reports of xdist workers carry user_properties, not markers)."""
    marker = item.get_closest_marker("catalogue")
    if marker is not None and call.when == "setup":
        item.user_properties.append(("catalogue", marker.args[0]))


def pytest_terminal_summary(terminalreporter) -> None:
    """Each catalogue's count, in the test output: how many of its cases passed."""
    counts: dict[str, list[bool]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            name = dict(getattr(report, "user_properties", ())).get("catalogue")
            if name and (report.when == "call" or not report.passed):
                counts.setdefault(name, []).append(report.passed)
    for name, passed in sorted(counts.items()):
        terminalreporter.write_line(f"{name} catalogue: {sum(passed)} of {len(passed)} cases pass")


def pytest_unconfigure(config) -> None:
    shutil.rmtree(os.environ["PREFECT_HOME"], ignore_errors=True)

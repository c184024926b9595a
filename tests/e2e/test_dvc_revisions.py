"""DVC's revisions end to end, in a git repository of their own (a copy of the project with small params,
whose data stages have run): reproduce, push and pull through a local remote, an experiment compared with
the workspace, and back to an earlier revision from DVC's cache. Apart from the session's whole run, so
that it runs beside it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.stages import STAGES
from tests.conftest import DAG_PARAMS, command_env, copy_of, git_repository, write_params
from tests.e2e.test_dvc_repro import BIN, dvc

pytestmark = pytest.mark.e2e


@pytest.fixture
def changed(split_project, prefect_api, tmp_path):
    """A git repository holding a copy of the project whose splits are made; small and fast (DAG_PARAMS, no
    comparisons): the test checks DVC's behaviour, not the models'."""
    project = copy_of(split_project, tmp_path / "project")
    write_params(project, DAG_PARAMS)
    write_params(project, {"compare": {"end_to_end": False, "transfer": False, "multitask": False}})
    git_repository(project, sources_only=True)
    env = command_env(prefect_api)
    try:
        yield project, env
    finally:
        subprocess.run([str(BIN / "mlstrategy"), "stage-server", "stop"], cwd=project, env=env, check=False)


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=True).stdout.strip()


def test_reproduce_push_pull_and_go_back_to_an_earlier_revision(changed, tmp_path):
    from pipelines.store.artifacts import remove_output
    from tests.conftest import digest

    project, env = changed
    metrics = ("metrics/evaluation.json", "metrics/diagnosis.json", "metrics/split.json")

    def read_metrics(root: Path) -> dict[str, dict]:
        found = {name: json.loads((root / name).read_text()) for name in metrics}
        # How many examples kept their split since the previous run: the split's history, not its result.
        for key in ("kept_from_last", "moved_since_last"):
            found["metrics/split.json"].pop(key)
        return found

    dvc(project, env, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "revision A")
    revision_a, at_a = git(project, "rev-parse", "HEAD"), read_metrics(project)

    # Delete the outputs, then `dvc repro`: the same metrics files.
    for name in ("models/model.keras", "metrics/evaluation.json", "metrics/diagnosis.json"):
        remove_output(project / name)
    dvc(project, env, "repro")
    assert read_metrics(project) == at_a

    # A DVC remote in a local folder: push, then pull into a fresh clone gives the same data.
    remote = tmp_path / "remote"
    dvc(project, env, "remote", "add", "-d", "local", str(remote))
    git(project, "add", "-A")  # the config, and the lock of the rebuilt (same metrics, new .keras bytes)
    git(project, "commit", "-qm", "remote")
    dvc(project, env, "push")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    dvc(clone, env, "pull")
    data = "data/raw/dataset.parquet"
    assert digest(clone / data)[str(clone / data)] == digest(project / data)[str(project / data)]

    # An experiment with another learning rate reruns train and what follows it only; it is compared with
    # the workspace's metrics and plots.
    experiment = dvc(project, env, "exp", "run", "-S", "train.learning_rate=0.02")
    ran = {line.split("'")[1] for line in experiment.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == set(STAGES) - {"ingest", "validate", "split"}
    shown = dvc(project, env, "exp", "show", "--no-pager", "--csv").stdout
    assert "train.learning_rate" in shown and "0.02" in shown
    assert "error" in dvc(project, env, "metrics", "diff", revision_a).stdout
    dvc(project, env, "plots", "diff", revision_a, "-o", str(tmp_path / "plots"))
    assert (tmp_path / "plots/index.html").is_file()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "revision B: learning rate 0.02")
    assert read_metrics(project) != at_a

    # Back to revision A: its metrics again, from DVC's cache; reproducing them runs nothing. (The sweep
    # would resume: its study store, sweeps/, is persisted across revisions, not cached.)
    git(project, "checkout", "-q", revision_a)
    dvc(project, env, "checkout")
    assert read_metrics(project) == at_a
    assert "Running stage" not in dvc(project, env, "repro", "diagnose").stdout
    assert read_metrics(project) == at_a

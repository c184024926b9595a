"""End to end: `dvc repro` in a temporary git repository holding a copy of the project: the session's whole
run, read first; the tests that change it run last in the session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.stages import STAGES
from tests.conftest import DAG_PARAMS, write_params

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent


def dvc(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / "dvc"), *args], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def repo(pipeline):
    """The session's whole run: `dvc repro` of every stage in a git repository holding a copy of the project,
    from a user's shell, tracked on an MLflow server. Read, and left as found."""
    return pipeline.project, pipeline.env, pipeline.first


@pytest.fixture(scope="module")
def changed(pipeline):
    """The whole run again, for the tests that change it: they run last in the session (`changes_pipeline`),
    in order. Small and fast from here on (every stage reruns on the next `dvc repro`): they check DVC's
    behaviour, not the sweep's or the loop's."""
    write_params(pipeline.project, DAG_PARAMS)
    write_params(pipeline.project, {"compare": {"end_to_end": False, "transfer": False, "multitask": False}})
    return pipeline.project, pipeline.env


def test_repro_writes_metrics_and_one_mlflow_run(repo):
    project, env, first = repo
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout
    evaluation = json.loads((project / "metrics/evaluation.json").read_text())
    diagnosis = json.loads((project / "metrics/diagnosis.json").read_text())
    assert diagnosis["errors"] == evaluation["errors"]
    assert (project / "reports/strategy.html").is_file() and (project / "models/model.keras").is_file()

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])  # the tracking server the stages logged to
    every = mlflow.search_runs(experiment_names=["mlstrategy"], output_format="list")
    runs = [run for run in every if "mlflow.parentRunId" not in run.data.tags]  # recipe iterations are nested
    assert len(runs) == 1
    assert runs[0].data.metrics["error/dev"] == pytest.approx(evaluation["errors"]["dev"])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    assert runs[0].data.tags["mlflow.source.git.commit"] == commit


def test_repro_right_after_does_nothing(repo):
    project, env, _ = repo
    again = dvc(project, env, "repro")
    assert "Running stage" not in again.stdout
    status = dvc(project, env, "status")
    assert "up to date" in status.stdout


@pytest.mark.changes_pipeline
def test_bad_params_stop_the_stage_with_one_message(changed):
    project, env = changed
    before = (project / "metrics/evaluation.json").read_bytes()
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("  epochs: 2", "  epochs: -2\n  epohcs: 3"))
    try:
        done = subprocess.run(
            [str(BIN / "dvc"), "repro"], cwd=project, env=env, capture_output=True, text=True
        )
    finally:
        (project / "params.yaml").write_text(params)
    assert done.returncode != 0
    # The first stage to rerun on a train change: synthesize (it measures the gap with the train config).
    assert (
        "mlstrategy stage synthesize: error: params.yaml: invalid parameters:\n  train.epohcs: unknown key"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert (project / "metrics/evaluation.json").read_bytes() == before


@pytest.mark.changes_pipeline
def test_relabel_refuses_a_one_sided_file_then_makes_a_new_data_version(changed):
    import pandas as pd
    import yaml

    project, env = changed
    raw, relabels, lock = (
        project / "data/raw/dataset.parquet",
        project / "data/relabels.csv",
        project / "dvc.lock",
    )

    def data_md5() -> str:
        validate = yaml.safe_load(lock.read_text())["stages"]["validate"]
        return next(out["md5"] for out in validate["outs"] if out["path"] == "data/raw/dataset.parquet")

    dev = pd.read_parquet(project / "data/splits/dev.parquet")[["id", "label"]].head(2)
    test = pd.read_parquet(project / "data/splits/test.parquet")[["id", "label"]].head(1)
    only_dev = pd.DataFrame({"id": dev["id"], "corrected": (dev["label"] + 1) % 10})
    (project / "fixes.csv").write_text(only_dev.to_csv(index=False))
    before = (raw.read_bytes(), relabels.read_bytes(), data_md5())
    mlstrategy = [str(BIN / "mlstrategy"), "relabel", "fixes.csv"]
    refused = subprocess.run(mlstrategy, cwd=project, env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    assert "the file corrects dev but no test example" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (raw.read_bytes(), relabels.read_bytes(), data_md5()) == before

    # Test reviewed too (its row keeps the label): accepted, and the data gets a new version.
    both = pd.concat([only_dev, test.rename(columns={"label": "corrected"})])
    (project / "fixes.csv").write_text(both.to_csv(index=False))
    done = subprocess.run(mlstrategy, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 reviewed (dev 2, test 1); 2 label(s) changed" in done.stdout
    assert data_md5() != before[2]
    labels = pd.read_parquet(raw).set_index("id")["label"]
    assert labels[dev["id"]].tolist() == only_dev["corrected"].tolist()
    assert labels[test["id"]].tolist() == test["label"].tolist()


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.changes_pipeline
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

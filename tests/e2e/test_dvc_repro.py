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


def serve_once(project: Path, env: dict) -> str:
    """`mlstrategy serve --once`: one scheduled run, now; its outcome line."""
    done = subprocess.run(
        [str(BIN / "mlstrategy"), "serve", "--once"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout.strip().splitlines()[-1]


def champion(env: dict) -> str | None:
    """The champion's version in the registry of the tracking server in `env`."""
    from pipelines.tracking import registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        found = registry.version_of("mlstrategy", "mlstrategy", registry.CHAMPION)
    return None if found is None else str(found.version)


def batch(project: Path, rows: int, first: int = 9000):
    """New rows shaped as the data: copies of current examples under new ids (phone-9000, ...)."""
    import pandas as pd

    frame = pd.read_parquet(project / "data/raw/dataset.parquet")
    new = frame[frame["source"] == "phone"].head(rows).copy()
    new["id"] = [f"phone-{first + i}" for i in range(rows)]
    return new


def register_a_worse_model(project: Path, env: dict, folder: Path) -> str:
    """A new version of the registered model that answers one class to everything (the pipeline's model
    with its weights zeroed), registered as the challenger from a run of its own: as the champion, any
    trained challenger beats it on the test set."""
    import numpy as np
    import pandas as pd

    from components.training import load_model
    from pipelines.store.params import load_params
    from pipelines.store.tables import classes
    from pipelines.tracking import registry, runs

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
        params = load_params()
        model = load_model(project / "models/improved.keras")
        for weight in model.trainable_weights:
            weight.assign(np.zeros(weight.shape, weight.dtype))
        worse = folder / "worse.keras"
        model.save(worse)
        train = pd.read_parquet(project / "data/splits/train.parquet")
        schema = registry.serving_schema(params.data, train, classes(params.data))
        client = runs.client(params.mlflow.experiment)
        experiment = client.get_experiment_by_name(params.mlflow.experiment).experiment_id
        run = client.create_run(experiment, run_name="a worse model").info.run_id
        version = registry.register(
            params.mlflow.experiment, params.mlflow.registered_model, run, worse, schema, train
        )
        client.set_terminated(run)
    return version


@pytest.mark.changes_pipeline
def test_scheduled_runs_take_new_data_quarantine_bad_batches_and_promote_by_the_test_set(changed, tmp_path):
    from tests.conftest import digest

    project, env = changed
    # The champion: a model clearly worse than any the pipeline trains, so that the scheduled run below
    # must promote its challenger (and a rollback has a promotion to undo).
    worse = register_a_worse_model(project, env, tmp_path)
    done = subprocess.run(
        [str(BIN / "mlstrategy"), "promote"], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and f"champion version (none) -> {worse}" in done.stdout, done.stderr
    first = champion(env)
    assert first == worse
    kept = digest(project / "models", project / "data/raw")

    # Nothing new in the landing folder: nothing runs, nothing is retrained.
    assert serve_once(project, env) == "scheduled run: nothing new: nothing retrained"
    assert digest(project / "models", project / "data/raw") == kept

    # A bad batch: quarantined with its report; the data version and the champion stay.
    landing, quarantine = project / "data/landing", project / "data/quarantine"
    landing.mkdir()
    bad = batch(project, 20)
    bad.loc[bad.index[3], "label"] = 42
    bad.to_parquet(landing / "bad.parquet", index=False)
    outcome = serve_once(project, env)
    assert "every new batch failed validation" in outcome and "the champion stays" in outcome
    assert (quarantine / "bad.parquet").is_file() and not (landing / "bad.parquet").exists()
    report = (quarantine / "bad.parquet.txt").read_text()
    assert "expect_column_values_to_be_in_set on column 'label'" in report and "42" in report
    assert (quarantine / "bad.parquet.data_docs/index.html").is_file()
    assert digest(project / "models", project / "data/raw") == kept and champion(env) == first

    # A good batch: a new data version, the DAG reruns, the new model meets the champion on the test set.
    batch(project, 30, first=9100).to_parquet(landing / "good.parquet", index=False)
    outcome = serve_once(project, env)
    assert outcome == "scheduled run: challenger wins: promoted", outcome
    assert (project / "data/batches/good.parquet").is_file()
    assert digest(project / "data/raw") != {k: v for k, v in kept.items() if "data/raw" in k}
    promoted = champion(env)
    assert promoted is not None and int(promoted) > int(first)  # the version this run registered

    # People can roll a promotion back, and promote by hand.
    back = subprocess.run(
        [str(BIN / "mlstrategy"), "rollback"], cwd=project, env=env, capture_output=True, text=True
    )
    assert back.returncode == 0 and f"champion version {promoted} -> {first}" in back.stdout, back.stderr
    assert champion(env) == first
    again = subprocess.run(
        [str(BIN / "mlstrategy"), "promote", promoted], cwd=project, env=env, capture_output=True, text=True
    )
    assert again.returncode == 0 and champion(env) == promoted, again.stderr


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

"""A real table as a user brings it (palmerpenguins' raw table: string labels, categories, yes/no flags,
dates, free text, missing values, ids and constant columns), through the README's commands in a git
repository: `mlstrategy init`, then `mlstrategy run` (DVC, Prefect, MLflow for real). The registered model
answers raw rows in the user's labels; every output speaks the user's class names; an edit of the file
reruns from ingest; relabeling takes class names. Scheduled runs (`mlstrategy serve --once`) take batches of
raw rows: a batch with an unknown class is quarantined with its report, one
with a new category passes with a warning and its model is promoted over a worse champion by the test
set; a run killed while it trains or while it promotes is finished by the next one; a promotion rolls
back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DAG_PARAMS, FAST_PARAMS, command_env, copy_project, git_repository, write_params

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
LABEL = "Species"


def mlstrategy(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN / "mlstrategy"), *args], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def table(tmp_path_factory, prefect_api):
    import palmerpenguins

    project = copy_project(tmp_path_factory.mktemp("table"))
    git_repository(project)
    source = Path(palmerpenguins.__file__).parent / "data" / "penguins-raw.csv"
    (project / "data/penguins.csv").write_bytes(source.read_bytes())  # the user's file, copied in
    env = command_env(prefect_api)
    try:
        init = mlstrategy(project, env, "init", "--data", "data/penguins.csv", "--label", LABEL)
        # Small and fast: this module checks the table's way through, not the model's quality.
        write_params(project, FAST_PARAMS)
        write_params(project, DAG_PARAMS)
        write_params(project, {"sweep": {"epochs": 2}, "compare": {"transfer": False, "min_steps": 10}})
        first = mlstrategy(project, env, "run")
        yield project, env, init, first
    finally:
        subprocess.run([str(BIN / "mlstrategy"), "stage-server", "stop"], cwd=project, env=env, check=False)


def registered(project: Path, alias: str = "challenger"):
    import mlflow.pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow/mlflow.db'}")
    return mlflow.pyfunc.load_model(f"models:/mlstrategy@{alias}")


def test_the_registered_model_answers_raw_rows_in_the_users_labels(table):
    from components.columns import row_ids

    project, _, init, first = table
    assert "Date Egg" in init.stdout and "data.features.Island" in init.stdout
    assert "principal problem:" in first.stdout
    raw = pd.read_csv(project / "data/penguins.csv")  # the user's rows, as read from their file
    dev_ids = set(pd.read_parquet(project / "data/splits/dev.parquet")["row_id"])
    dev = raw[pd.Series(row_ids(raw)).isin(dev_ids).to_numpy()]
    assert len(dev) == len(dev_ids)
    model = registered(project)
    inputs = model.metadata.signature.inputs.to_dict()
    assert {spec["name"] for spec in inputs} >= {"Island", "Date Egg", "Culmen Length (mm)", "Comments"}
    assert {"Region", "Individual ID", LABEL} & {spec["name"] for spec in inputs} == set()
    answers = model.predict(dev.drop(columns=[LABEL]))  # id-like and constant columns ride along
    assert set(answers) <= set(raw[LABEL]) and answers.name == LABEL
    improve = json.loads((project / "metrics/improve.json").read_text())
    assert (answers.to_numpy() == dev[LABEL].to_numpy()).mean() == pytest.approx(improve["final_dev_metric"])
    probabilities = model.predict(dev.drop(columns=[LABEL]).head(3), params={"probabilities": True})
    assert list(probabilities.columns) == sorted(raw[LABEL].unique())


def test_every_output_speaks_the_users_class_names(table):
    project, _, _, _ = table
    names = set(pd.read_csv(project / "data/penguins.csv")[LABEL])
    confusion = pd.read_csv(project / "metrics/confusion_dev.csv")
    assert set(confusion["actual"]) <= names
    split = json.loads((project / "metrics/split.json").read_text())
    assert set(split["per_class"]["dev"]) == names
    analysis = json.loads((project / "metrics/analyze.json").read_text())
    tags = {row["tag"] for row in analysis["tags"]}
    assert any(tag.startswith("Island=") for tag in tags) or any(" in [" in tag for tag in tags), tags
    compare = json.loads((project / "metrics/compare.json").read_text())["end_to_end"]
    assert set(compare["points"][-1]["baselines"]) == {"gradient_boosting", "logistic_regression"}
    html = (project / "reports/strategy.html").read_text()
    assert all(name in html for name in names) and "gradient-boosted trees" in html
    assert "human-level error is a placeholder" in html  # init without --human-level


def test_relabel_takes_class_names_for_dev_and_test_together(table):
    project, env, _, _ = table
    queue = pd.read_csv(project / "reports/relabel_queue.csv")
    splits = {name: pd.read_parquet(project / f"data/splits/{name}.parquet") for name in ("dev", "test")}
    rows = [splits[name][["row_id", LABEL]].head(1).set_axis(["id", "corrected"], axis=1) for name in splits]
    fixes = pd.concat(rows, ignore_index=True)
    other = sorted(set(splits["dev"][LABEL]) - {fixes.loc[0, "corrected"]})[0]
    fixes.loc[0, "corrected"] = other  # a class name, as the queue writes them
    assert set(queue["label"]) <= set(splits["dev"][LABEL]) | set(splits["test"][LABEL])
    fixes.to_csv(project / "fixes.csv", index=False)
    done = mlstrategy(project, env, "relabel", "fixes.csv")
    assert "2 reviewed (dev 1, test 1); 1 label(s) changed" in done.stdout
    raw = pd.read_parquet(project / "data/raw/dataset.parquet").set_index("row_id")
    assert raw.loc[fixes.loc[0, "id"], LABEL] == other


def test_an_edit_of_the_file_in_place_reruns_from_ingest_and_is_versioned(table):
    project, env, _, _ = table
    before = yaml.safe_load((project / "data/penguins.csv.dvc").read_text())["outs"][0]["md5"]
    text = (project / "data/penguins.csv").read_text()
    (project / "data/penguins.csv").write_text(text.replace(",39.1,18.7,", ",39.2,18.7,", 1))
    done = mlstrategy(project, env, "run", "validate")
    assert "Running stage 'ingest'" in done.stdout and "Running stage 'validate'" in done.stdout
    assert yaml.safe_load((project / "data/penguins.csv.dvc").read_text())["outs"][0]["md5"] != before


def serve_once(project: Path, env: dict) -> str:
    """`mlstrategy serve --once`: one scheduled run, now; its outcome line."""
    return mlstrategy(project, env, "serve", "--once").stdout.strip().splitlines()[-1]


def serve_in_background(project: Path, env: dict) -> tuple[subprocess.Popen, list[str]]:
    """`mlstrategy serve --once` in a session of its own; its output lines, as they come."""
    served = subprocess.Popen(
        [str(BIN / "mlstrategy"), "serve", "--once"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(served.stdout), daemon=True).start()
    return served, output


def wait_for(served: subprocess.Popen, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 600
    while not condition():
        assert served.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"waited 600 s for {what}"
        time.sleep(0.05)


def kill(served: subprocess.Popen) -> None:
    """SIGKILL for the run and everything it started (DVC, its stages), as a machine stop would."""
    os.killpg(served.pid, signal.SIGKILL)
    served.wait()


def phase(project: Path) -> str | None:
    """The phase the scheduled runs' journal owes (store.landing), None when it owes nothing."""
    from pipelines.store.landing import JOURNAL

    journal = project / JOURNAL
    try:
        return json.loads(journal.read_text())["phase"]
    except FileNotFoundError:
        return None


def champion(project: Path) -> str | None:
    """The champion's version in the project's registry."""
    from pipelines.tracking import registry

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow/mlflow.db'}")
        found = registry.version_of("mlstrategy", "mlstrategy", registry.CHAMPION)
    return None if found is None else str(found.version)


def register_a_worse_model(project: Path, folder: Path) -> str:
    """A new version of the registered model that answers one class to everything (the pipeline's model
    with its weights zeroed), registered as the challenger from a run of its own: as the champion, any
    trained challenger beats it on the test set."""
    import numpy as np

    from components.training import load_model
    from tests.conftest import register_version

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow/mlflow.db'}")
        model = load_model(project / "models/improved.keras")
        for weight in model.trainable_weights:
            weight.assign(np.zeros(weight.shape, weight.dtype))
        worse = folder / "worse.keras"
        model.save(worse)
        return register_version(worse, "a worse model")


@pytest.mark.catalogue("fault")  # case 6 at the steps a run must finish: repro and promotion
def test_scheduled_runs_take_raw_batches_quarantine_bad_ones_and_finish_after_a_kill(table, tmp_path):
    from tests.conftest import digest

    project, env, _, _ = table
    raw = pd.read_csv(project / "data/penguins.csv")
    # The champion: a model clearly worse than any the pipeline trains, so that the scheduled run below
    # must promote its challenger (and a rollback has a promotion to undo).
    worse = register_a_worse_model(project, tmp_path)
    assert f"champion version (none) -> {worse}" in mlstrategy(project, env, "promote").stdout
    first = champion(project)
    assert first == worse
    kept = digest(project / "models", project / "data/raw")

    # A batch of raw rows with a class the data never had: quarantined with its report; the data version
    # and the champion stay.
    landing, quarantine = project / "data/landing", project / "data/quarantine"
    landing.mkdir()
    unknown = raw.tail(6).copy()
    unknown[LABEL] = "Emperor penguin (Aptenodytes forsteri)"
    unknown.to_csv(landing / "unknown_class.csv", index=False)
    outcome = serve_once(project, env)
    assert "every new batch failed validation" in outcome and "the champion stays" in outcome
    assert (quarantine / "unknown_class.csv").is_file() and not (landing / "unknown_class.csv").exists()
    report = (quarantine / "unknown_class.csv.txt").read_text()
    assert f"on column '{LABEL}'" in report and "Emperor penguin" in report
    assert (quarantine / "unknown_class.csv.data_docs/index.html").is_file()
    assert digest(project / "models", project / "data/raw") == kept and champion(project) == first

    # New rows from an island the data never had (a new category passes with a warning): a new data
    # version, the DAG reruns, the new model meets the champion on the test set and wins.
    new_island = raw.tail(8).copy()
    new_island["Island"] = "Deception"
    new_island["Culmen Length (mm)"] += 0.01  # new rows, so new ids
    new_island.to_csv(landing / "new_island.csv", index=False)
    # Killed (SIGKILL, its whole process group) while `dvc repro` trains on the accepted batch: the batch
    # stays accepted, the journal owes the training, the champion stays.
    served, _ = serve_in_background(project, env)
    wait_for(served, lambda: phase(project) == "training", "the run started training")
    time.sleep(5)  # inside `dvc repro`
    kill(served)
    assert phase(project) == "training" and not any(landing.iterdir())
    assert (project / "data/batches/new_island.csv").is_file() and champion(project) == first
    # The next run trains again, and is killed inside the promotion: the registry's store is held by another
    # writer, so its first write waits, and the kill lands there. Nothing promoted; the journal owes the
    # comparison.
    served, output = serve_in_background(project, env)
    wait_for(served, lambda: phase(project) == "comparing", "the run started comparing")
    with contextlib.closing(sqlite3.connect(project / "mlflow/mlflow.db", isolation_level=None)) as store:
        store.execute("BEGIN IMMEDIATE")  # other writers wait; readers go on
        wait_for(served, lambda: any("promoting it" in line for line in output), "the run promoted")
        kill(served)
        store.execute("ROLLBACK")
    assert any("stopped while training" in line for line in output)
    assert phase(project) == "comparing" and champion(project) == first
    # The run after that compares again and promotes.
    assert serve_once(project, env) == "scheduled run: challenger wins: promoted"
    assert phase(project) is None
    assert (project / "data/batches/new_island.csv").is_file()
    validation = json.loads((project / "metrics/validation.json").read_text())
    assert validation["new_categories"] == [{"column": "Island", "rows": 8, "values": ["Deception"]}]
    assert digest(project / "data/raw") != {k: v for k, v in kept.items() if "data/raw" in k}
    promoted = champion(project)
    assert promoted is not None and int(promoted) > int(first)  # the version this run registered
    answers = registered(project, "champion").predict(new_island.drop(columns=[LABEL]))
    assert set(answers) <= set(raw[LABEL])

    # People can roll a promotion back, and promote by hand.
    assert f"champion version {promoted} -> {first}" in mlstrategy(project, env, "rollback").stdout
    assert champion(project) == first
    mlstrategy(project, env, "promote", promoted)
    assert champion(project) == promoted

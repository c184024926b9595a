"""The stage flows and their contracts: the session's whole run (every stage, by `dvc repro`, tracked on a
real MLflow server) read back, and stages run again in process against Prefect's test harness, in copies of
it or of the project."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.errors import UserError
from pipelines.running.orchestration import run_stage
from pipelines.stages import STAGES
from pipelines.store import artifacts
from pipelines.store.params import load_params
from tests.conftest import copy_of, digest, enter


def run_all(stages=STAGES) -> None:
    params = load_params()
    for name in stages:
        run_stage(name, params)


@pytest.fixture
def ran(pipeline, monkeypatch) -> Path:
    """The session's whole run (`pipeline`: every stage, by `dvc repro`, tracked on the MLflow server) as
    the working directory, read and left as found."""
    enter(pipeline.project, monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pipeline.mlflow)
    return pipeline.project


@pytest.fixture
def copied(pipeline, tmp_path, monkeypatch) -> Path:
    """A copy of the session's whole run, with an MLflow store of its own, as the working directory: for
    the tests that run its stages again or change its files."""
    return enter(copy_of(pipeline.project, tmp_path / "copy"), monkeypatch, "flows-copy")


def execution_of(url: str) -> str:
    """The id of the one pipeline execution tracked on the MLflow server at `url` (its top-level run)."""
    import mlflow

    mlflow.set_tracking_uri(url)
    every = mlflow.search_runs(experiment_names=["mlstrategy"], output_format="list")
    [run] = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    return run.data.tags["mlstrategy.execution_id"]


def rest(url: str, path: str, body: dict | None = None) -> dict:
    """A call of the MLflow REST API (POST with a body, else GET)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}", data=data)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def answers() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (labels, the saved model's answers)}, by Keras' own `predict`: not the stages' code."""
    from components.training import load_model
    from pipelines.store.tables import read_splits

    model = load_model(artifacts.MODEL)
    _, arrays = read_splits(load_params().data, ("train", "train_dev", "dev", "test"))
    return {name: (y, model.predict(x, verbose=0).argmax(axis=1)) for name, (x, y) in arrays.items()}


def principal_of(errors: dict, human: float, sizes: dict, tolerance: float, z: float = 1.959964) -> str:
    """The course's reading, done again here: each gap (train - human, train_dev - train, dev - train_dev,
    test - dev) is a problem when above the tolerance and its own 95% half-width, z * sqrt(sum of e (1 - e)
    / n over its two errors, an error of 0 or 1 taken half an example inward); the largest is the
    principal one."""

    def var(split: str) -> float:
        n = sizes[split]
        e = min(max(errors[split], 0.5 / n), 1 - 0.5 / n)
        return e * (1 - e) / n

    gaps = {
        "avoidable_bias": (errors["train"] - human, var("train")),
        "variance": (errors["train_dev"] - errors["train"], var("train") + var("train_dev")),
        "data_mismatch": (errors["dev"] - errors["train_dev"], var("train_dev") + var("dev")),
        "dev_overfit": (errors["test"] - errors["dev"], var("dev") + var("test")),
    }
    problems = {name: gap for name, (gap, v) in gaps.items() if gap > max(tolerance, z * math.sqrt(v))}
    return max(problems, key=problems.get) if problems else "none"


def test_whole_pipeline_writes_the_contracts(ran):
    settings = yaml.safe_load(Path("params.yaml").read_text())
    evaluation = json.loads(artifacts.EVALUATION.read_text())
    assert set(evaluation["errors"]) == {"train", "train_dev", "dev", "test"}
    # Every error, recomputed from the saved model's answers (to one example: Keras' predict batches
    # differently); dev's exactly from the confusion file.
    found = answers()
    sizes = {name: len(y) for name, (y, _) in found.items()}
    assert evaluation["sizes"] == sizes
    for name, (y, predicted) in found.items():
        assert evaluation["errors"][name] == pytest.approx(np.mean(predicted != y), abs=1.01 / len(y)), name
    confusion = pd.read_csv(artifacts.CONFUSION_DEV)
    wrong = (confusion["actual"] != confusion["predicted"]).to_numpy()
    assert len(confusion) == sizes["dev"] and evaluation["errors"]["dev"] == pytest.approx(wrong.mean())
    assert evaluation["optimizing"]["name"] == "accuracy"
    assert evaluation["optimizing"]["dev"] == pytest.approx(1 - wrong.mean())
    # The satisficing bounds as params.yaml sets them; the model's size as the file is.
    bounds = settings["evaluate"]["satisficing"]
    assert set(evaluation["satisficing"]) == set(bounds) == {"latency_p95_ms", "model_size_mb"}
    assert evaluation["measures"]["model_size_mb"] == pytest.approx(artifacts.MODEL.stat().st_size / 1e6)
    for name, bound in bounds.items():
        item = evaluation["satisficing"][name]
        assert item["value"] == evaluation["measures"][name] > 0 and item["bound"] == bound
        assert item["met"] is (item["value"] <= bound)

    diagnosis = json.loads(artifacts.DIAGNOSIS.read_text())
    assert diagnosis["errors"] == evaluation["errors"]
    # Human-level error of train: its sources' best human levels, weighted by their examples.
    split = json.loads(artifacts.SPLIT.read_text())
    levels, mix = settings["diagnose"]["human_level"], split["sizes_by_source"]["train"]
    human = sum(count * min(levels[source].values()) for source, count in mix.items()) / sum(mix.values())
    assert diagnosis["human_level_error"] == pytest.approx(human)
    assert diagnosis["gaps"]["data_mismatch"] == pytest.approx(
        evaluation["errors"]["dev"] - evaluation["errors"]["train_dev"]
    )
    tolerance = settings["diagnose"]["tolerance"]
    assert diagnosis["principal"] == principal_of(diagnosis["errors"], human, sizes, tolerance)

    improve = json.loads(artifacts.IMPROVE.read_text())
    assert {"iterations", "stopped_because", "final"} <= set(improve)
    for step in improve["iterations"]:
        assert {"gap", "action", "params", "dev_metric_before", "dev_metric_after", "kept"} <= set(step)
        assert step["kept"] == (step["dev_metric_after"] > step["dev_metric_before"])
    if diagnosis["principal"] == "data_mismatch":  # the bundled data's: synthesis comes first
        assert improve["iterations"][0]["action"] == "synthesize training data like dev"
        assert {"strength", "mode"} == set(improve["iterations"][0]["trials"][0]["params"]["synthesis"])
    final = improve["final"]  # the improved model's errors, on the same splits
    assert final["principal"] == principal_of(final["errors"], human, sizes, tolerance)
    assert artifacts.IMPROVED_MODEL.is_file()

    analysis = json.loads(artifacts.ANALYZE.read_text())
    errors, n = int(wrong.sum()), len(wrong)
    assert (analysis["dev_errors"], analysis["dev_size"]) == (errors, n)  # the same model, the same answers
    assert analysis["dev_error"] == pytest.approx(evaluation["errors"]["dev"])
    table = pd.read_csv(artifacts.ERROR_TABLE)
    assert list(table["ceiling"]) == sorted(table["ceiling"])  # most promising first
    # Each tag's ceiling: the dev error with its errors fixed, from the confusion file's error count; the
    # confusion pairs' counts from the confusion file too.
    assert table["ceiling"].to_numpy() == pytest.approx((errors - table["count"].to_numpy()) / n)
    assert table["share"].to_numpy() == pytest.approx(table["count"].to_numpy() / errors)
    pairs = (confusion["actual"].astype(str) + "->" + confusion["predicted"].astype(str))[wrong]
    counted = table.set_index("tag")["count"]
    assert {t.removeprefix("confusion="): c for t, c in counted.items() if t.startswith("confusion=")} == (
        pairs.value_counts().to_dict()
    )
    phone = table.set_index("tag").loc["source=phone"]
    assert phone["count"] == errors and phone["share"] == 1.0  # dev is all phone: every error has the tag
    assert {"blurry", "dark", "low_contrast", "noisy"} & set(table["tag"])
    queue = pd.read_csv(artifacts.RELABEL_QUEUE)
    assert set(queue["split"]) <= {"train", "dev", "test"}
    assert {name: int((queue["split"] == name).sum()) for name in ("train", "dev", "test")} == {
        name: analysis["label_issues"][name] for name in ("train", "dev", "test")
    }
    looked = pd.read_csv(artifacts.ERROR_SAMPLE)
    assert (~looked["correct"]).sum() == min(100, errors) and looked["correct"].sum() > 0
    assert artifacts.ERROR_GALLERY.stat().st_size > 0
    page = artifacts.REPORT.read_text()
    assert 'id="error-analysis"' in page and 'alt="worst dev errors"' in page

    split = json.loads(artifacts.SPLIT.read_text())
    assert sum(split["sizes"].values()) == 1797
    assert split["sizes_by_source"]["dev"] == {"phone": split["sizes"]["dev"]}
    assert split["sizes_by_source"]["test"] == {"phone": split["sizes"]["test"]}
    assert set(split["sizes_by_source"]["train"]) == {"scan", "phone"}

    ids = {
        name: set(pd.read_parquet(artifacts.split_path(name))["id"]) for name in ("train", "train_dev", "dev")
    }
    assert not ids["train"] & ids["train_dev"] and not ids["train"] & ids["dev"]

    html = artifacts.REPORT.read_text()
    assert "Error ladder" in html and f"{100 * evaluation['errors']['dev']:.2f}%" in html
    assert (artifacts.DATA_DOCS / "index.html").is_file()
    assert len(pd.read_csv(artifacts.TRAIN_HISTORY)) == 3

    # The bundled digits are images: the CNN family, on this machine's CPU in float32.
    training = json.loads(artifacts.TRAINING.read_text())
    assert training["family"] == "cnn" and training["devices"] == ["cpu"] and training["epochs"] == 3
    assert training["dtype_policy"] == "float32" and training["examples_per_second"] > 0
    assert training["flops_per_example"] > training["parameters"]  # convolutions reuse their weights
    assert "A cnn of" in html

    compared = json.loads(artifacts.COMPARE.read_text())
    sizes = [point["train_size"] for point in compared["end_to_end"]["points"]]
    assert sizes[-1] == split["sizes"]["train"] and "training examples" in compared["end_to_end"]["verdict"]
    target_in_train = split["sizes_by_source"]["train"]["phone"]
    assert compared["transfer"]["points"][-1]["target_size"] == target_in_train
    assert set(compared["multitask"]["tasks"]) == {"even", "greater_than_five", "has_loop"}
    curve = pd.read_csv(artifacts.COMPARE_END_TO_END)
    assert list(curve.columns) == ["train_size", "end_to_end_error", "pipeline_error"] and len(curve) == 1
    assert artifacts.COMPARE_FIGURE.stat().st_size > 0
    assert "How to learn from this data" in html and 'alt="comparisons"' in html


def test_the_execution_is_one_mlflow_run(ran):
    import mlflow

    from pipelines.tracking import runs

    mlflow.set_tracking_uri(runs.tracking_uri())
    every = mlflow.search_runs(experiment_names=["mlstrategy"], output_format="list")
    executions = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert len(executions) == 1
    run = executions[0]
    # The recipe loop's iterations are nested under it, each tagged with its gap, action and outcome.
    improve = json.loads(artifacts.IMPROVE.read_text())
    nested = [r for r in every if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    sweeps = [r for r in nested if "mlstrategy.study" in r.data.tags]
    nested = [r for r in nested if "mlstrategy.study" not in r.data.tags]
    assert len(sweeps) == 1  # the sweep's trials are nested one level further, under it
    assert len(nested) == len(improve["iterations"])
    for child in nested:
        assert {"mlstrategy.iteration", "mlstrategy.gap", "mlstrategy.action"} <= set(child.data.tags)
        assert child.data.tags["mlstrategy.outcome"] in ("kept", "rejected")
    assert run.info.status == "FINISHED"
    # Every stage of the `dvc repro` in this one run: the execution id derived from the dvc process.
    assert re.fullmatch(r"dvc-\d+-\d+", run.data.tags[runs.EXECUTION_TAG])
    assert len(run.data.tags["dvc.data_md5"]) == 32
    for name in (
        "error/train",
        "error/train_dev",
        "error/dev",
        "error/test",
        "human_level_error",
        "gap/avoidable_bias",
        "gap/variance",
        "gap/data_mismatch",
        "gap/dev_overfit",
        "accuracy/dev",
        "latency_p95_ms",
        "model_size_mb",
        "label_issues/dev_share",
        "error_analysis/source:phone/share",
    ):
        assert name in run.data.metrics, name
    assert run.data.params["train.epochs"] == "3"
    artifacts_logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"report", "plots", "metrics", "model", "error_analysis"} <= artifacts_logged


def test_the_tracking_server_answers_over_rest(ran, pipeline):
    mlflow_server = pipeline.mlflow
    experiment = rest(mlflow_server, "experiments/get-by-name?experiment_name=mlstrategy")["experiment"]
    found = rest(
        mlflow_server,
        "runs/search",
        {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.`mlstrategy.execution_id` = '{execution_of(mlflow_server)}'",
        },
    )["runs"]
    assert len(found) == 1
    metrics = {m["key"]: m["value"] for m in found[0]["data"]["metrics"]}
    evaluation = json.loads(artifacts.EVALUATION.read_text())
    assert metrics["error/dev"] == pytest.approx(evaluation["errors"]["dev"])
    version = rest(mlflow_server, "registered-models/alias?name=mlstrategy&alias=challenger")["model_version"]
    assert version["run_id"] == found[0]["info"]["run_id"]  # the run's model is the registry's challenger


def test_same_params_same_metrics(copied, pipeline):
    first = json.loads((pipeline.project / artifacts.DIAGNOSIS).read_text())
    (copied / artifacts.DIAGNOSIS).unlink()
    run_all(("train", "evaluate", "diagnose"))  # in this process, the whole run's were each a process
    assert json.loads(artifacts.DIAGNOSIS.read_text()) == first


def test_contract_violation_stops_validate_and_keeps_the_last_good_outputs(copied):
    outputs = (artifacts.RAW_DATA, artifacts.VALIDATION, artifacts.DATA_DOCS, artifacts.SPLITS_DIR)
    kept, batch = digest(*outputs), artifacts.INGESTED.read_bytes()
    frame = pd.read_parquet(artifacts.INGESTED)
    frame.loc[3, "px_0_0"] = 7.5
    frame.loc[5, "label"] = 42
    frame.to_parquet(artifacts.INGESTED)
    with pytest.raises(UserError) as raised:
        run_all(("validate",))
    message = str(raised.value)
    assert "values in [0.0, 0.277] on column 'px_0_0': 1 bad value(s)" in message  # data/contract.yaml
    assert "e.g. [7.5] at rows [3] (0-based; ids [" in message
    assert "expect_column_values_to_be_in_set on column 'label'" in message and "42" in message
    assert "The current data version (data/raw/dataset.parquet) is unchanged" in message
    assert "Data Docs: reports/failed/data_docs/validations/raw_data/" in message
    assert digest(*outputs) == kept  # the previous data version stays the current one
    artifacts.INGESTED.write_bytes(batch)


def browser(*args: str) -> str:
    """Headless Chromium with `args`; its standard output. Skips where Chromium is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt install chromium): no browser to open pages in")
    command = [found, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def rendered_text(page: Path | str, wait_ms: int = 0) -> str:
    """The text of `page` (a file or a URL) as headless Chromium renders it, after `wait_ms` of its
    scripts' time (a single-page app fetches its data first), as one line."""
    url = page.resolve().as_uri() if isinstance(page, Path) else page
    dom = (
        browser(f"--virtual-time-budget={wait_ms}", "--dump-dom", url)
        if wait_ms
        else browser("--dump-dom", url)
    )
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S))
    return " ".join(html.unescape(text).split())


def test_data_docs_open_in_a_browser(ran):
    [page] = artifacts.DATA_DOCS.glob("validations/**/*.html")  # the page validate links
    evaluated = json.loads(artifacts.VALIDATION.read_text())["evaluated"]
    text = rendered_text(page)
    assert "Expectation Suite: raw_data" in text and "Status: Succeeded" in text
    assert f"Evaluated Expectations {evaluated} Successful Expectations {evaluated}" in text
    assert "px_7_7" in text  # a section per column


def test_the_report_and_the_mlflow_ui_show_the_run_in_a_browser(ran, pipeline, tmp_path):
    from PIL import Image, ImageStat

    evaluation = json.loads(artifacts.EVALUATION.read_text())
    text = rendered_text(artifacts.REPORT)
    assert "Error ladder" in text and f"{100 * evaluation['errors']['dev']:.2f}%" in text
    shot = tmp_path / "report.png"
    browser(f"--screenshot={shot}", artifacts.REPORT.resolve().as_uri())
    assert max(ImageStat.Stat(Image.open(shot).convert("L")).stddev) > 10  # not a blank page

    mlflow_server = pipeline.mlflow
    experiment = rest(mlflow_server, "experiments/get-by-name?experiment_name=mlstrategy")["experiment"]
    [run] = rest(
        mlflow_server,
        "runs/search",
        {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.`mlstrategy.execution_id` = '{execution_of(mlflow_server)}'",
        },
    )["runs"]
    page = f"{mlflow_server}/#/experiments/{experiment['experiment_id']}/runs/{run['info']['run_id']}"
    assert "error/dev" in rendered_text(page, wait_ms=20000)


def test_missing_input_is_named(project, prefect_api):
    with pytest.raises(
        UserError, match=r"data/ingested/dataset.parquet: missing; it is produced by the 'ingest' stage"
    ):
        run_all(("validate",))


def test_user_csv_without_id_column(project, prefect_api):
    from tests.conftest import write_params

    pd.DataFrame({"label": [0, 1], "f": [0.1, 0.2]}).to_csv(project / "mine.csv", index=False)
    write_params(project, {"data": {"path": "mine.csv", "source_column": None, "target_sources": []}})
    with pytest.raises(UserError, match=r"mine.csv: missing column\(s\) \['id'\].*add an id column"):
        run_all(("ingest",))

"""The drift guard: the first data that passes becomes the reference; a batch whose column moved is
flagged (warn: logged and in metrics/validation.json; fail: the stage stops, outputs kept)."""

from __future__ import annotations

import json

import pandas as pd

from pipelines.cli import main
from pipelines.store import artifacts
from tests.conftest import FAST_PARAMS, copy_project, write_params


def test_reference_then_warn_then_fail(tmp_path, prefect_api, monkeypatch, capsys):
    copy_project(tmp_path)
    write_params(tmp_path, FAST_PARAMS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLSTRATEGY_EXECUTION_ID", "drift")

    # The first data that passes is the reference; the same data passes against it.
    assert main(["stage", "ingest"]) == 0 and main(["stage", "validate"]) == 0
    assert json.loads(artifacts.VALIDATION.read_text())["drift"]["reference"] == "created"
    profile = json.loads(artifacts.REFERENCE_PROFILE.read_text())
    assert "id" not in profile and {"label", "source", "px_3_3"} <= set(profile)
    assert set(profile["source"]) == {"values", "weights"} and set(profile["px_3_3"]) == {"bins", "weights"}
    assert main(["stage", "validate"]) == 0
    again = json.loads(artifacts.VALIDATION.read_text())["drift"]
    assert again["reference"] == "compared" and again["drifted"] == []

    # A moved column warns by default...
    frame = pd.read_parquet(artifacts.INGESTED)
    frame["px_3_3"] = (frame["px_3_3"] + 0.3).clip(0, 1)
    frame.to_parquet(artifacts.INGESTED, index=False)
    assert main(["stage", "validate"]) == 0
    moved = json.loads(artifacts.VALIDATION.read_text())["drift"]["drifted"]
    assert [d["column"] for d in moved] == ["px_3_3"] and moved[0]["divergence"] > 0.1

    # ... and fails when asked, keeping the last good outputs.
    kept = artifacts.VALIDATION.read_bytes(), artifacts.REFERENCE_PROFILE.read_bytes()
    write_params(tmp_path, {"drift": {"mode": "fail"}})
    capsys.readouterr()
    assert main(["stage", "validate"]) == 65  # the data's fault (errors.DataError)
    err = capsys.readouterr().err
    assert "1 column(s) drifted from the reference" in err and "column 'px_3_3': KL divergence" in err
    assert "(drift.mode: fail)" in err
    assert (artifacts.VALIDATION.read_bytes(), artifacts.REFERENCE_PROFILE.read_bytes()) == kept

"""Nothing lost when a real stage is killed: `mlstrategy stage validate`, SIGKILLed while it writes, leaves
the current data version and its reports as they were, and the next run is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from pipelines.store import artifacts
from tests.conftest import copy_of, digest

MLSTRATEGY = str(Path(sys.executable).with_name("mlstrategy"))
OUTPUTS = (artifacts.RAW_DATA, artifacts.VALIDATION, artifacts.DATA_DOCS, artifacts.REFERENCE_PROFILE)


def test_a_stage_killed_mid_write_keeps_the_last_good_outputs_and_the_next_run_is_clean(
    tmp_path_factory, split_project, prefect_api
):
    project = copy_of(split_project, tmp_path_factory.mktemp("kill"))  # ingest, validate and split have run
    batch = project / artifacts.INGESTED
    frame = pd.read_parquet(batch)
    frame.loc[0, "label"] = (frame.loc[0, "label"] + 1) % 10  # a new batch: one label corrected
    frame.to_parquet(batch, index=False)
    before = digest(*(project / path for path in OUTPUTS))
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "MLSTRATEGY_STAGE_SERVER": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [MLSTRATEGY, "stage", "validate"]
    reports = project / "reports"

    # Data Docs are built in a hidden temporary directory for the whole checkpoint: kill it then.
    stage = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list(reports.glob(".data_docs.tmp-*")):
        assert stage.poll() is None, (
            f"validate ended before it could be killed: {stage.stderr.read()[-2000:]}"
        )
        assert time.monotonic() < deadline, "validate never started writing"
        time.sleep(0.005)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    stage.stderr.close()
    assert stage.returncode == -signal.SIGKILL
    assert digest(*(project / path for path in OUTPUTS)) == before
    assert list(reports.glob(".data_docs.tmp-*"))  # what the killed writer left: hidden, never read

    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(reports.glob(".data_docs.tmp-*"))
    assert (project / artifacts.RAW_DATA).read_bytes() == batch.read_bytes()  # the batch is now current

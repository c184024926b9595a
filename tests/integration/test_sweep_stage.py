"""The sweep stage: contract, MLflow nesting, resume after SIGKILL, and a run on a real Dask cluster."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.running.orchestration import run_stage
from pipelines.store import artifacts
from pipelines.store.params import load_params
from tests.conftest import copy_of, enter, write_params


@pytest.fixture
def splits(split_project, tmp_path, monkeypatch):
    """A copy of the session's project whose splits are made, as the working directory."""
    return enter(copy_of(split_project, tmp_path / "project"), monkeypatch, "sweep-test")


def finished(study_db: Path) -> dict[int, tuple[str, str]]:
    """{trial number: (state, datetime_complete)} of the finished trials in the study store."""
    with sqlite3.connect(study_db) as db:
        rows = db.execute(
            "SELECT number, state, datetime_complete FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
        ).fetchall()
    return {number: (state, done) for number, state, done in rows}


def test_sweep_contract_and_mlflow_nesting(splits, monkeypatch):
    from pipelines.stages import sweep as stage

    # One trial in flight at a time (the pool keeps its two workers): the promoted trial, first in the
    # queue, trains before the new one, so what halving decides follows from the dev curves alone. Two at
    # once race to the second rung, and whichever gets there second may be pruned.
    in_order = stage.run_round
    monkeypatch.setattr(
        stage, "run_round", lambda jobs, submit, slots, *rest: in_order(jobs, submit, 1, *rest)
    )
    # TPE in the finer box: with fewer than ten trials inside it, it draws at random, through the real
    # study's storage and the trials' recorded values.
    write_params(splits, {"sweep": {"rounds": 2, "trials": 2, "workers": 2, "sampler": "tpe"}})
    run_stage("sweep", load_params())
    summary = json.loads(artifacts.SWEEP.read_text())
    # Round 1 screens two trials; round 2 holds the promoted one and a new one. The promoted trial
    # completes (see below), so no configuration trains again.
    assert summary["mode"] == "caviar" and summary["trials"] == 4
    assert {"params", "dev_metric", "satisficing_met"} <= set(summary["best"])
    assert [r["trials"] for r in summary["rounds"]] == [2, 2]
    first, second = (r["box"]["learning_rate"] for r in summary["rounds"])
    assert first["low"] <= second["low"] < second["high"] <= first["high"]
    # The coarse round screens (one epoch each: the first rung of 3 epochs); only finer trials are chosen.
    assert summary["screened"] == 2
    table = artifacts.read_frame(artifacts.SWEEP_TRIALS, "sweep")
    assert set(table[table["round"] == 1]["state"]) == {"screened"}
    assert set(table[table["round"] == 1]["epochs"]) == {1}
    assert summary["best"]["trial"] in set(table[table["round"] == 2]["trial"])
    assert artifacts.SWEEP_MODEL.is_file()
    # Screened trials hold halving's first rung: their value there is in the study, for finer trials to meet.
    import optuna

    study = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{splits / 'sweeps' / 'study.db'}"
    )
    screened = [t for t in study.trials if t.user_attrs["outcome"]["screened"]]
    assert [t.intermediate_values for t in screened] == [
        {1: t.user_attrs["outcome"]["curve"][0]} for t in screened
    ]
    # Halving promotes the better screened trial (the best third, at least one): it opens round 2,
    # resumed from its saved state, and costs only the epochs it adds.
    best = max(screened, key=lambda t: t.user_attrs["outcome"]["curve"][-1])
    [promoted] = [t for t in study.trials if t.user_attrs["outcome"].get("resumed_from") is not None]
    outcome = promoted.user_attrs["outcome"]
    assert promoted.user_attrs["round"] == 2 and outcome["resumed_from"] == best.number
    assert promoted.params == best.params and outcome["curve"][0] == best.user_attrs["outcome"]["curve"][0]
    assert outcome["epochs"] == len(outcome["curve"]) - 1
    assert sorted(promoted.intermediate_values) == list(range(1, len(outcome["curve"]) + 1))
    assert table[table["trial"] == promoted.number]["resumed_from"].tolist() == [best.number]
    assert not (splits / "sweeps" / "checkpoints" / summary["study"]).exists()  # spent once promoted
    # Halving (rungs at epochs 1 and 3 of 3, the best third, at least the best one, goes on), worked out
    # from the dev curves: the promoted trial meets no rival at epoch 3 (the new one runs after it), so
    # it completes; the new trial goes past epoch 1 only if it beats every value there (the screened
    # ones', the promoted trial's copy of its source's), and past epoch 3 only if it beats the promoted one.
    assert promoted.state.name == "COMPLETE" and len(outcome["curve"]) == 3
    [new] = [t for t in study.trials if t.user_attrs["round"] == 2 and t.number != promoted.number]
    curve = new.user_attrs["outcome"]["curve"]
    passes_first = curve[0] >= max(t.user_attrs["outcome"]["curve"][0] for t in screened)
    new_epochs = 3 if passes_first else 1
    assert len(curve) == new_epochs
    assert summary["pruned"] == int(not passes_first or curve[2] < outcome["curve"][2])
    # The budget, exactly: two screened epochs, the two the promoted trial adds, and the new trial's.
    assert summary["epochs_used"] == 2 * 1 + (3 - 1) + new_epochs
    # Its optimizer went on from the screened run's step count: every step of the three epochs, once.
    import pyarrow.parquet as pq

    from components.training import load_model

    config = load_params().trial_config(outcome["values"])
    rows = pq.ParquetFile(artifacts.split_path("train")).metadata.num_rows
    model = load_model(stage.trial_model(summary["study"], promoted.number), compile=True)
    assert int(model.optimizer.iterations) == 3 * -(-rows // config.batch_size)

    from mlflow.tracking import MlflowClient

    from pipelines.tracking import runs

    client, execution_run = runs.parent_run("mlstrategy", "sweep-test")
    experiment = client.get_run(execution_run).info.experiment_id
    [sweep_run] = client.search_runs(
        [experiment],
        filter_string=f"tags.mlflow.parentRunId = '{execution_run}' and tags.`mlstrategy.mode` = 'caviar'",
    )
    trials = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{sweep_run.info.run_id}'"
    )
    assert len(trials) == summary["trials"]
    assert sum(t.data.tags["mlstrategy.chosen"] == "true" for t in trials) == 1
    assert sum(t.data.tags["mlstrategy.state"] == "screened" for t in trials) == 2
    assert [t.data.tags.get("mlstrategy.resumed_from") for t in trials].count(str(best.number)) == 1
    complete = [t for t in trials if t.data.tags["mlstrategy.state"] == "complete"]
    history = MlflowClient().get_metric_history(complete[0].info.run_id, "accuracy/dev")
    assert [m.step for m in history] == [1, 2, 3]  # one point per epoch
    assert "learning_rate" in complete[0].data.params
    # The anytime curve: best dev metric so far after each trial, in the order they ended, against the
    # epochs spent; in sweep.json, and as the sweep run's metric by step = epochs spent.
    ended = sorted(study.trials, key=lambda t: t.datetime_complete)
    spent = np.cumsum([t.user_attrs["outcome"]["epochs"] for t in ended]).tolist()
    best_so_far = np.maximum.accumulate([t.user_attrs["outcome"]["curve"][-1] for t in ended]).tolist()
    assert summary["anytime"] == [list(point) for point in zip(spent, best_so_far, strict=True)]
    assert spent[-1] == summary["epochs_used"]
    logged = MlflowClient().get_metric_history(sweep_run.info.run_id, "best_so_far/dev_accuracy")
    assert [[m.step, m.value] for m in logged] == summary["anytime"]


def test_a_sweep_whose_trials_all_stopped_early_trains_the_best_again_to_the_end(splits):
    import optuna
    from optuna.distributions import FloatDistribution

    from pipelines.stages import sweep as stage

    write_params(splits, {"sweep": {"rounds": 2, "trials": 2, "workers": 1}})
    params = load_params()
    space = stage.search_space.SearchSpace.from_params(params.sweep.space, params.sweep.focus)
    study = stage.open_study(params, space)
    # Both rounds already ran, every trial stopped at the first rung (as a killed sweep leaves them).
    rate = FloatDistribution(1e-4, 0.1, log=True)
    for number, (round_number, value, lr) in enumerate(
        [(1, 0.5, 0.01), (1, 0.3, 0.02), (2, 0.7, 0.003), (2, 0.6, 0.05)]
    ):
        values = {"learning_rate": lr}
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED,
                params={"learning_rate": lr},
                distributions={"learning_rate": rate},
                intermediate_values={1: value},
                user_attrs={
                    "round": round_number,
                    "values": values,
                    "outcome": {
                        "number": number,
                        "values": values,
                        "curve": [value],
                        "pruned": round_number == 2,
                        "screened": round_number == 1,
                        "epochs": 1,
                        "measures": {},
                        "training_s": 0.0,
                    },
                },
            )
        )
    study.set_user_attr("box_1", space.to_dict())
    study.set_user_attr("box_2", space.to_dict())
    run_stage("sweep", params)
    summary = json.loads(artifacts.SWEEP.read_text())
    assert summary["trials"] == 5 and summary["best"]["params"] == {"learning_rate": 0.003}
    rerun = optuna.load_study(study_name=summary["study"], storage=stage.storage_url(params)).trials[-1]
    assert rerun.user_attrs["rerun_of"] == 2 and rerun.state.name == "COMPLETE"
    assert len(rerun.user_attrs["outcome"]["curve"]) == params.trial_epochs  # never pruned
    assert artifacts.SWEEP_MODEL.is_file()


def test_a_killed_sweep_resumes_without_running_a_finished_trial_again(splits, prefect_api):
    write_params(splits, {"sweep": {"rounds": 1, "trials": 3, "workers": 1, "epochs": 10, "pruner": "none"}})
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "MLSTRATEGY_EXECUTION_ID": "sweep-kill"}
    command = [sys.executable, "-m", "pipelines.cli", "stage", "sweep"]
    process = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    study_db = splits / "sweeps" / "study.db"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if study_db.is_file() and len(finished(study_db)) >= 1:
            break
        time.sleep(0.5)
    assert process.poll() is None, "the sweep ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the flow and its worker processes
    process.wait()
    before = finished(study_db)
    assert 1 <= len(before) < 3 and not artifacts.SWEEP.exists()

    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    after = finished(study_db)
    assert len(after) == 3
    assert all(after[number] == state for number, state in before.items())  # not run again
    summary = json.loads(artifacts.SWEEP.read_text())
    assert summary["trials"] == 3


def test_trials_run_on_a_dask_cluster(splits):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        write_params(splits, {"sweep": {"rounds": 1, "trials": 4, "dask_address": cluster.scheduler_address}})
        run_stage("sweep", load_params())
    summary = json.loads(artifacts.SWEEP.read_text())
    assert summary["trials"] == 4

    import optuna

    study = optuna.load_study(
        study_name=summary["study"], storage=f"sqlite:///{splits / 'sweeps' / 'study.db'}"
    )
    workers = {t.user_attrs["outcome"]["worker"] for t in study.trials}
    assert len(workers) == 2 and os.getpid() not in {int(w.rsplit(":", 1)[1]) for w in workers}

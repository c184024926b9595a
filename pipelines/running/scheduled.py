"""The scheduled pipeline: what a nightly run does, as one Prefect flow that `mlstrategy serve` serves on a
schedule (cron or interval) against a Prefect server.

1. New batches in the landing folder (params.yaml schedule.landing). None: the run ends there, nothing
   retrained.
2. Each batch moves to data/batches and `dvc repro validate` checks it (ingest, then the contract and the
   drift guard). A batch that fails goes to the quarantine folder with the message and its Data Docs; the
   current data version and the champion stay.
3. With a batch accepted, `dvc repro`: the DAG on the new data version; `report` registers the model as the
   registry's challenger.
4. The challenger against the champion on the same test set under the selection rule (the optimizing
   metric among models that meet every satisficing bound; the champion stays on a tie). It becomes the
   champion when it wins, or when there is none.
5. `dvc push` when a default DVC remote is configured.

Each run leaves its summary as a Prefect markdown artifact and as tags of its MLflow run.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.evaluation import Candidate, metric, select
from pipelines.errors import UserError
from pipelines.running import stage_server
from pipelines.running.runtime import EXECUTION_ENV, dvc_env, execution_id, script
from pipelines.store.artifacts import BATCHES, FAILED_DATA_DOCS, batch_files, data_version, write_text
from pipelines.store.params import Params, load_params
from pipelines.tracking import registry, runs

SUMMARY_KEY = "scheduled-run-summary"


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    """`dvc ARGS` in the project, as part of this execution (its stages log to the same MLflow run)."""
    env = dvc_env({EXECUTION_ENV: execution_id()})
    return subprocess.run([script("dvc"), *args], env=env, capture_output=capture, text=True, check=False)


@task(cache_policy=NO_CACHE)
def take_batch(batch: Path, quarantine: Path) -> str | None:
    """Move `batch` into data/batches and validate it; on failure move it (with the message and the Data
    Docs) to `quarantine` and return the message, else None."""
    accepted = BATCHES / batch.name
    if accepted.exists():
        raise UserError(f"{batch}: a batch named {batch.name} was accepted before ({accepted}); rename it")
    shutil.move(batch, accepted)
    done = dvc("repro", "validate", capture=True)
    if done.returncode == 0:
        return None
    quarantine.mkdir(parents=True, exist_ok=True)
    shutil.move(accepted, quarantine / batch.name)
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "error:" in line or "- " in line]
    message = "\n".join(errors[-30:]) or (done.stdout + done.stderr)[-4000:]
    write_text(quarantine / f"{batch.name}.txt", message + "\n")
    if FAILED_DATA_DOCS.is_dir():
        shutil.copytree(FAILED_DATA_DOCS, quarantine / f"{batch.name}.data_docs", dirs_exist_ok=True)
    return message


@task(cache_policy=NO_CACHE)
def challenger_wins(params: Params) -> dict:
    """Champion and challenger on the current test set (dev when there is none) under the selection rule;
    promote the challenger when it wins or when there is no champion."""
    from components.training import load_model, predict_classes
    from pipelines.shared.measure import trial_measures
    from pipelines.store.tables import classes, read_splits

    options, experiment = params.mlflow, params.mlflow.experiment
    name = options.registered_model
    champion = registry.version_of(experiment, name, registry.CHAMPION)
    challenger = registry.version_of(experiment, name, registry.CHALLENGER)
    if challenger is None:
        return {"decision": "no challenger: nothing registered yet"}
    if champion is None or champion.version == challenger.version:
        moved = registry.promote(experiment, name, str(challenger.version))
        why = "first champion" if champion is None else "already the champion"
        return {"decision": why, "champion": moved.after}
    _, arrays = read_splits(params.data, ("train", "dev", "test"))
    labels = classes(params.data)
    split = "test" if "test" in arrays else "dev"
    x, y = arrays[split]
    candidates, found = [], {}
    for role, version in ((registry.CHAMPION, champion), (registry.CHALLENGER, challenger)):
        path = registry.model_file(experiment, name, str(version.version))
        model = load_model(path)
        value = metric(params.evaluate.optimizing_metric, y, predict_classes(model, x), len(labels))
        measures = trial_measures(model, x, path)  # as a sweep or recipe candidate is measured
        # The selection rule, here on the test set both models are scored on now.
        candidates.append(Candidate(role, value, measures))
        found[role] = {"version": str(version.version), split: value, **measures}
    evaluate = params.evaluate
    chosen = select(candidates, evaluate.trial_bounds, evaluate.higher_is_better).chosen
    wins = chosen is not None and chosen.name == registry.CHALLENGER
    summary = {"split": split, "metric": params.evaluate.optimizing_metric, **found}
    if wins:
        registry.promote(experiment, name, str(challenger.version))
        return {**summary, "decision": "challenger wins: promoted", "champion": str(challenger.version)}
    return {**summary, "decision": "champion stays", "champion": str(champion.version)}


def has_default_remote() -> bool:
    done = dvc("remote", "default", capture=True)
    return done.returncode == 0 and bool(done.stdout.strip())


@flow(name="scheduled_pipeline")
def scheduled_pipeline() -> dict:
    """Take new data from the landing folder, validate it, rerun the DAG on it and promote the model that
    beats the champion (see the module's docstring)."""
    from prefect.runtime import flow_run

    # Every stage of this run logs to one MLflow run, found by the Prefect flow run's id.
    os.environ[EXECUTION_ENV] = f"scheduled-{flow_run.id}"
    logger = get_run_logger()
    params = load_params()
    landing, quarantine = Path(params.schedule.landing), Path(params.schedule.quarantine)
    batches = batch_files(landing) if landing.is_dir() else []
    summary: dict = {"landing": str(landing), "new_batches": [b.name for b in batches]}
    if not batches:
        summary["outcome"] = "nothing new: nothing retrained"
        return report(params, summary)
    quarantined = {}
    for batch in batches:
        message = take_batch(batch, quarantine)
        if message is not None:
            logger.error("%s failed validation, moved to %s:\n%s", batch.name, quarantine, message)
            quarantined[batch.name] = message
    accepted = [b.name for b in batches if b.name not in quarantined]
    summary.update({"accepted": accepted, "quarantined": sorted(quarantined)})
    if not accepted:
        dvc("repro", "validate", capture=True)  # back to the last good data version's ingest
        summary["outcome"] = f"every new batch failed validation (in {quarantine}); the champion stays"
        return report(params, summary)
    if stage_server.enabled():
        stage_server.start_in_background(Path.cwd())
    done = dvc("repro")
    if done.returncode != 0:
        raise UserError(f"`dvc repro` failed (exit {done.returncode}) on the new data; the champion stays")
    summary["comparison"] = challenger_wins(params)
    summary["data_md5"] = data_version()
    if has_default_remote():
        pushed = dvc("push", capture=True)
        summary["pushed"] = pushed.returncode == 0
        if pushed.returncode:
            logger.warning("dvc push failed: %s", pushed.stderr[-2000:])
    summary["outcome"] = summary["comparison"]["decision"]
    return report(params, summary)


def report(params: Params, summary: dict) -> dict:
    """The run's summary as a Prefect markdown artifact and as tags of the execution's MLflow run."""
    from prefect.artifacts import create_markdown_artifact

    lines = [f"**{summary['outcome']}**", ""]
    lines += [f"- {key}: {value}" for key, value in summary.items() if key != "outcome"]
    create_markdown_artifact("\n".join(lines), key=SUMMARY_KEY, description="mlstrategy scheduled run")
    runs.annotate_execution(
        params.mlflow.experiment,
        execution_id(),
        {
            "mlstrategy.scheduled.outcome": summary["outcome"],
            "mlstrategy.scheduled.new_batches": str(len(summary["new_batches"])),
            "mlstrategy.scheduled.quarantined": ",".join(summary.get("quarantined", [])),
            "mlstrategy.champion": str(summary.get("comparison", {}).get("champion", "")),
        },
    )
    get_run_logger().info("scheduled run: %s", summary["outcome"])
    return summary


def serve(cron: str | None = None, interval: float | None = None, name: str = "nightly") -> None:
    """Serve scheduled_pipeline on `cron` or every `interval` seconds until interrupted."""
    stop = threading.Event()
    every = min(30.0, interval / 2) if interval else 30.0
    keeper = threading.Thread(
        target=keep_scheduled, args=(f"{scheduled_pipeline.name}/{name}", stop, every), daemon=True
    )
    keeper.start()
    try:
        # limit=1: two runs at once would move the same batches and race on the stores.
        scheduled_pipeline.serve(name=name, cron=cron, interval=interval, tags=["mlstrategy"], limit=1)
    finally:
        stop.set()


def keep_scheduled(deployment: str, stop: threading.Event, every_s: float, ahead: int = 3) -> None:
    """Keep the next `ahead` runs of `deployment`'s schedules created on the server, every `every_s`.

    The Prefect server's own scheduler does this, but with the SQLAlchemy 2.1 this project installs its
    bulk insert fails ("Can't evaluate bulk DML statement"), so served deployments never ran. The runs are
    created one by one through the API with the idempotency key the server's scheduler uses, so the two
    never make the same run twice. A server that is down or restarting is simply tried again.
    """
    import asyncio
    import datetime

    from prefect.client.orchestration import get_client
    from prefect.server.schemas import schedules
    from prefect.states import Scheduled

    while not stop.is_set():
        try:
            with get_client(sync_client=True) as client:
                found = client.read_deployment_by_name(deployment)
                now = datetime.datetime.now(datetime.UTC)
                for item in found.schedules:
                    if not item.active:
                        continue
                    kind = getattr(schedules, type(item.schedule).__name__)
                    dates = asyncio.run(kind(**item.schedule.model_dump()).get_dates(n=ahead, start=now))
                    for date in dates:
                        client.create_flow_run_from_deployment(
                            found.id,
                            state=Scheduled(scheduled_time=date),
                            idempotency_key=f"scheduled {found.id} {item.id} {date}",
                            tags=["mlstrategy", "auto-scheduled"],
                        )
        except Exception as error:  # not deployed yet, or the server is restarting: next round
            logging.getLogger(__name__).debug("scheduling %s: %s", deployment, error)
        stop.wait(every_s)

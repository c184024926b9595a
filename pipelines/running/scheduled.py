"""The scheduled pipeline: what a nightly run does, as one Prefect flow that `mlstrategy serve` serves on a
schedule (cron or interval) against a Prefect server.

1. New batches in the landing folder (params.yaml schedule.landing). None: the run ends there, nothing
   retrained.
2. Each batch that has settled moves to data/batches and `dvc repro validate` checks it (ingest, then the
   contract and the drift guard). A batch whose data is bad goes to the quarantine folder with the message
   and its Data Docs; the current data version and the champion stay. A failure that is not the data's
   (a server, DVC's lock, the machine) gives the batch back to landing and fails the run.
3. With a batch accepted, `dvc repro`: the DAG on the new data version; `report` registers the model as the
   registry's challenger.
4. The challenger against the champion on the same test set under the selection rule (the optimizing
   metric among models that meet every satisficing bound; the champion stays on a tie). It becomes the
   champion when it wins, or when there is none.
5. `dvc push` when a default DVC remote is configured.

Each run leaves its summary as a Prefect markdown artifact and as tags of its MLflow run. Where every batch
is, the lock that keeps two runs apart and the journal a killed run is finished from: `store.landing`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.evaluation import Candidate, metric, select
from pipelines.errors import DataError, TemporaryFailure
from pipelines.running import stage_server
from pipelines.running.runtime import EXECUTION_ENV, dvc_env, execution_id, script
from pipelines.store import landing as landing_state
from pipelines.store.artifacts import FAILED_DATA_DOCS, data_version
from pipelines.store.params import Params, load_params
from pipelines.tracking import registry, runs

SUMMARY_KEY = "scheduled-run-summary"
# `mlstrategy stage` ends with this status when the data is bad (errors.DataError): DVC reports it as
# "exited with 65". Any other failure is the machine's, a server's or the settings' (errors).
DATA_STATUS = f"exited with {DataError.exit_code}"
PREFECT_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d+ \| ")  # "17:00:01.123 | ERROR | ..."


@dataclass(frozen=True)
class DvcRun:
    """One `dvc` command of a scheduled run: its exit status and output, and what a failure was."""

    returncode: int
    output: str

    @property
    def data_error(self) -> bool:
        """Failed because the data is bad (a stage exited with DataError's status)."""
        return self.returncode != 0 and DATA_STATUS in self.output

    def message(self, lines: int = 30) -> str:
        """The failed stage's own message (its `mlstrategy ...: error:` line and the finding lines under
        it) and DVC's `ERROR:` line; Prefect's log lines left out. Else the output's end."""
        found, inside = [], False
        for line in self.output.splitlines():
            if ": error: " in line or line.startswith("ERROR:"):
                found.append(line)
                inside = True
            elif inside and line.strip() and not PREFECT_LOG_LINE.match(line):  # the details under it
                found.append(line)
            else:
                inside = False
        return "\n".join(found[-lines:]) or self.output[-4000:]


def dvc(*args: str) -> DvcRun:
    """`dvc ARGS` in the project, as part of this execution (its stages log to the same MLflow run): the one
    place a scheduled run runs DVC."""
    env = dvc_env({EXECUTION_ENV: execution_id()})
    done = subprocess.run([script("dvc"), *args], env=env, capture_output=True, text=True, check=False)
    return DvcRun(done.returncode, done.stdout + done.stderr)


@task(cache_policy=NO_CACHE)
def judge_batch(batch: Path, quarantine: Path, landing: Path, accepted: list[str]) -> str | None:
    """Take `batch` and validate it (`dvc repro validate`): accepted (None), or quarantined with the
    reason (returned). A failure that is not the data's gives the batch back to landing and raises."""
    before = landing_state.accepted_before(batch)
    if before is not None:
        reason = (
            f"a batch named {batch.name} was accepted before ({before}); a batch is never replaced: rename "
            "this one and put it in landing again if it is new data"
        )
        landing_state.quarantine(batch, quarantine, reason)
        return reason
    taken = landing_state.take(batch, accepted)
    done = dvc("repro", "validate")
    if done.returncode == 0:
        landing_state.Journal.between([*accepted, batch.name])
        return None
    if done.data_error:
        landing_state.quarantine(taken, quarantine, done.message(), FAILED_DATA_DOCS)
        landing_state.Journal.between(accepted)
        return done.message()
    back = landing_state.give_back(taken, landing)
    landing_state.Journal.between(accepted)
    raise TemporaryFailure(
        f"`dvc repro validate` failed for a reason other than the data (exit {done.returncode}); "
        f"{batch.name} is back in landing as {back.name}, nothing quarantined:\n{done.message(12)}"
    )


@task(cache_policy=NO_CACHE)
def challenger_wins(params: Params) -> dict:
    """Champion and challenger on the current test set (dev when there is none) under the selection rule;
    promote the challenger when it wins or when there is no champion. A registry that does not answer
    raises Unavailable: nothing is promoted."""
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
        if champion is None:
            get_run_logger().info("no champion yet: promoting version %s", challenger.version)
        moved = registry.promote(experiment, name, str(challenger.version))
        why = "first champion" if champion is None else "already the champion"
        return {"decision": why, "champion": moved.after}
    _, arrays = read_splits(params.data, ("train", "dev", "test"))
    labels = classes(params.data)
    split = "test" if "test" in arrays else "dev"
    x, y = arrays[split]
    candidates, found = [], {}
    for role, version in ((registry.CHAMPION, champion), (registry.CHALLENGER, challenger)):
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.model_file(experiment, name, str(version.version), Path(tmp))
            model = load_model(path)
            measures = trial_measures(model, x, path)  # as a sweep or recipe candidate is measured
        value = metric(params.evaluate.optimizing_metric, y, predict_classes(model, x), len(labels))
        # The selection rule, here on the test set both models are scored on now.
        candidates.append(Candidate(role, value, measures))
        found[role] = {"version": str(version.version), split: value, **measures}
    evaluate = params.evaluate
    chosen = select(candidates, evaluate.trial_bounds, evaluate.higher_is_better).chosen
    wins = chosen is not None and chosen.name == registry.CHALLENGER
    summary = {"split": split, "metric": params.evaluate.optimizing_metric, **found}
    if wins:
        get_run_logger().info(
            "challenger version %s beats champion version %s on %s (%s): promoting it",
            challenger.version,
            champion.version,
            split,
            params.evaluate.optimizing_metric,
        )
        registry.promote(experiment, name, str(challenger.version))
        return {**summary, "decision": "challenger wins: promoted", "champion": str(challenger.version)}
    return {**summary, "decision": "champion stays", "champion": str(champion.version)}


def has_default_remote() -> bool:
    done = dvc("remote", "default")
    return done.returncode == 0 and bool(done.output.strip())


@flow(name="scheduled_pipeline")
def scheduled_pipeline() -> dict:
    """Take new data from the landing folder, validate it, rerun the DAG on it and promote the model that
    beats the champion (see the module's docstring)."""
    from prefect.runtime import flow_run

    from pipelines.running.orchestration import console_without_tracebacks

    console_without_tracebacks()  # also when the served process runs this flow in a process of its own
    # Every stage of this run logs to one MLflow run, found by the Prefect flow run's id.
    os.environ[EXECUTION_ENV] = f"scheduled-{flow_run.id}"
    params = load_params()
    landing = Path(params.schedule.landing)
    with landing_state.exclusive() as mine:
        if not mine:
            summary = {"landing": str(landing), "new_batches": []}
            summary["outcome"] = (
                f"skipped: another scheduled run (pid {landing_state.holder()}) holds {landing_state.LOCK}"
            )
            return report(params, summary)
        return _run(params, landing, Path(params.schedule.quarantine))


def _run(params: Params, landing: Path, quarantine: Path) -> dict:
    logger = get_run_logger()
    journal = landing_state.recover(landing)
    resumed = journal.phase if journal is not None else None
    batches, changing = landing_state.settled(landing, params.schedule.settle_s)
    summary: dict = {"landing": str(landing), "new_batches": [b.name for b in batches]}
    if changing:
        summary["left_for_next_run"] = [b.name for b in changing]
        logger.info("still being written, left for the next run: %s", ", ".join(b.name for b in changing))
    if resumed:
        summary["resumed"] = resumed
        logger.warning("the last scheduled run stopped while %s: this run goes on from there", resumed)
    if not batches and not resumed:
        landing_state.Journal.clear()
        summary["outcome"] = "nothing new: nothing retrained"
        return report(params, summary)
    accepted = list(journal.accepted) if journal is not None else []
    quarantined = {}
    for batch in batches:
        message = judge_batch(batch, quarantine, landing, accepted)
        if message is None:
            accepted.append(batch.name)
        else:
            logger.error("%s refused, moved to %s:\n%s", batch.name, quarantine, message)
            quarantined[batch.name] = message
    summary.update({"accepted": accepted, "quarantined": sorted(quarantined)})
    if not accepted and resumed != landing_state.COMPARING:
        dvc("repro", "validate")  # back to the last good data version's ingest
        landing_state.Journal.clear()
        summary["outcome"] = f"every new batch failed validation (in {quarantine}); the champion stays"
        return report(params, summary)
    if resumed != landing_state.COMPARING:
        landing_state.Journal(landing_state.TRAINING, accepted=accepted).write()
        if stage_server.enabled():
            stage_server.start_in_background(Path.cwd())
        done = dvc("repro")
        if done.returncode != 0:
            raise TemporaryFailure(
                f"`dvc repro` failed (exit {done.returncode}) on the new data; the champion stays, and the "
                f"next run trains again:\n{done.message(12)}"
            )
    landing_state.Journal(landing_state.COMPARING, accepted=accepted).write()
    summary["comparison"] = challenger_wins(params)
    landing_state.Journal.clear()
    summary["data_md5"] = data_version()
    if has_default_remote():
        pushed = dvc("push")
        summary["pushed"] = pushed.returncode == 0
        if pushed.returncode:
            logger.warning("dvc push failed: %s", pushed.output[-2000:])
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
    """Serve scheduled_pipeline on `cron` or every `interval` seconds until interrupted: a deployment whose
    runs the Prefect server's scheduler creates, and this process runs (`flow.serve`)."""
    # limit=1: two runs at once would wait on the landing lock for nothing.
    scheduled_pipeline.serve(name=name, cron=cron, interval=interval, tags=["mlstrategy"], limit=1)

"""MLflow: one parent run per pipeline execution, found by the execution id every stage shares.

The store is local by default (SQLite in mlflow/mlflow.db, artifacts in mlflow/artifacts/); set
MLFLOW_TRACKING_URI to use a tracking server instead. Metric names are stable so that runs compare in
the UI: error/<split>, human_level_error, gap/<gap>, <metric>/<split>, latency_p95_ms, model_size_mb.
Tags carry the git revision and the data hash that reproduce the run. Every param and tag goes through
mask_secrets first, so that no credential ends up in the store.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.running.runtime import script
from pipelines.store.artifacts import file_digest

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MLFLOW_DIR = Path("mlflow")
EXECUTION_TAG = "mlstrategy.execution_id"
MASK = "***"

# A key names a secret when its last dotted part, split into words (snake_case, kebab-case, camelCase),
# holds one of these words or word pairs: "db_password", "oauth.client_secret", "apiKey", "X-Auth-Token"
# do; "tokenizer", "max_tokens", "author", "salt" do not.
_SECRET_WORDS = re.compile(
    r"(?:^|_)(?:password|passwd|pwd|secret|token|api_?key|access_key|private_key|credentials?"
    r"|auth|authorization)(?:_|$)"
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#@]+(?=@)")
# name=value, as in a URL query (?token=abc&x=1) or a connection string (host=db password=hunter2).
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)=[^\s&#;,'\"]+")
_CREDENTIAL = re.compile(
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key id
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"  # GitHub tokens
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI-style API keys
    r"|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?P<bearer>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's token
)


def local_tracking_uri() -> str:
    return f"sqlite:///{(MLFLOW_DIR / 'mlflow.db').resolve()}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


def ui_command(host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The `mlflow ui` command line for this project's store, bound to localhost."""
    return [
        script("mlflow"),
        "ui",
        "--backend-store-uri",
        tracking_uri(),
        "--default-artifact-root",
        (MLFLOW_DIR / "artifacts").resolve().as_uri(),
        "--host",
        host,
        "--port",
        str(port),
    ]


def _client(experiment: str) -> tuple[MlflowClient, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return client, found.experiment_id
    # In the local store, artifacts go next to the database; a tracking server decides for itself.
    location = (MLFLOW_DIR / "artifacts").resolve().as_uri() if uri == local_tracking_uri() else None
    return client, client.create_experiment(experiment, artifact_location=location)


def client(experiment: str) -> MlflowClient:
    """A client of the tracking store (and its registry), with `experiment` created if it is new."""
    return _client(experiment)[0]


def parent_run(experiment: str, execution: str) -> tuple[MlflowClient, str]:
    """A client and the run of this pipeline execution, created by the first stage that asks for it."""
    client, experiment_id = _client(experiment)
    return client, _execution_run(client, experiment_id, execution)


def _execution_run(client: MlflowClient, experiment_id: str, execution: str) -> str:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{EXECUTION_TAG}` = '{execution}'", max_results=1
    )
    if runs:
        return runs[0].info.run_id
    return client.create_run(experiment_id, tags={EXECUTION_TAG: execution}).info.run_id


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 0.1}} -> {"train.lr": 0.1}; lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


MAX_PARAM_VALUE = 6000  # characters of a param's value that MLflow keeps


def name_for(name: str) -> str:
    """A metric or param name MLflow accepts (letters, digits, '_', '-', '.', ' ', ':' and '/'): the others,
    as a user's column names may hold ('Culmen Length (mm)'), become '_'."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)


def is_secret_key(key: str) -> bool:
    """Whether a param or tag name says its value is a secret (the rule is at _SECRET_WORDS)."""
    last = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key.rsplit(".", 1)[-1])
    return bool(_SECRET_WORDS.search(re.sub(r"[^a-z0-9]+", "_", last.lower())))


def mask_text(text: str) -> str:
    """`text` with URL passwords, secret-named assignments (?token=, password=) and well-known
    credentials (AWS, GitHub, Slack, OpenAI keys, JWTs, bearer tokens) replaced by ***."""
    text = _URL_PASSWORD.sub(rf"\g<head>{MASK}", text)
    text = _ASSIGNMENT.sub(
        lambda m: f"{m['name']}={MASK}" if is_secret_key(m["name"]) else m[0],
        text,
    )
    return _CREDENTIAL.sub(lambda m: (m["bearer"] or "") + MASK, text)


def _mask(key: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value):
        return value  # nothing to hide, and "unset" stays visible
    if is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return mask_secrets(value)
    if isinstance(value, list | tuple):
        return type(value)(_mask("", item) for item in value)
    return value


def mask_secrets(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of params or tags fit for MLflow, where anyone with the UI can read them: the whole value
    of a secret-named key (is_secret_key) is ***, and in the others' strings (lists and nested mappings
    included) mask_text hides what looks like a credential. Other values pass through unchanged."""
    return {key: _mask(key, value) for key, value in values.items()}


def reproducibility_tags(data_file: Path) -> dict[str, str]:
    """The git revision (and whether the tree had changes) and the DVC md5 of the raw data file."""

    def git(*args: str) -> str | None:
        """git's answer, or None when git could not say (no git, not a repository)."""
        try:
            return subprocess.run(
                ["git", *args],  # noqa: S607 (git from PATH, as DVC finds it)
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    changes = git("status", "--porcelain", "--untracked-files=no")
    return {
        "mlflow.source.git.commit": git("rev-parse", "HEAD") or "unknown",
        "git.dirty": "unknown" if changes is None else str(bool(changes)).lower(),
        "dvc.data_md5": file_digest(data_file, "md5"),
        "dvc.data_path": str(data_file),
    }


def log_pipeline_run(
    experiment: str,
    execution: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    curves: Mapping[str, Iterable[float]],
    tags: Mapping[str, str],
    artifacts: Mapping[str, Path | Sequence[Path]],
) -> str:
    """Log one execution into its parent run and mark it finished; returns the run id.

    curves: per-epoch series, logged with step = epoch. artifacts: {artifact folder: files or directories}.
    """
    client, run_id = parent_run(experiment, execution)
    _log_batch(client, run_id, params, metrics, tags, curves)
    for folder, paths in artifacts.items():
        for path in [paths] if isinstance(paths, Path) else paths:
            if path.is_dir():
                client.log_artifacts(run_id, str(path), folder)
            elif path.is_file():
                client.log_artifact(run_id, str(path), folder)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _log_batch(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    curves: Mapping[str, Iterable[float] | Mapping[int, float]] | None = None,
) -> None:
    """Params (flattened), metrics at step 0, curves (per epoch at step = epoch, or {step: value}), and
    tags, in one call.
    Names are made fit for MLflow (`name_for`); a param's value is cut to MLflow's 6,000 characters."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    step_metrics = [
        Metric(name_for(name), float(value), now, step)
        for name, series in (curves or {}).items()
        for step, value in (series.items() if isinstance(series, Mapping) else enumerate(series, 1))
    ]
    client.log_batch(
        run_id,
        metrics=[Metric(name_for(name), float(value), now, 0) for name, value in metrics.items()]
        + step_metrics,
        params=[
            Param(name_for(name), str(value)[:MAX_PARAM_VALUE])
            for name, value in mask_secrets(flatten(params)).items()
        ],
        tags=[RunTag(name, value) for name, value in mask_secrets(tags).items()],
    )


def annotate_execution(experiment: str, execution: str, tags: Mapping[str, str]) -> str:
    """Add `tags` to the execution's run (made if no stage made it), which ends FINISHED; its id."""
    client, run_id = parent_run(experiment, execution)
    _log_batch(client, run_id, {}, {}, tags)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def record_failure(experiment: str, execution: str, stage: str, message: str) -> str:
    """Mark the execution's run FAILED with the stage and the error, so failed nights show in the UI."""
    client, run_id = parent_run(experiment, execution)
    tags = mask_secrets({"mlstrategy.failed_stage": stage, "mlstrategy.error": message})
    client.set_tag(run_id, "mlstrategy.failed_stage", tags["mlstrategy.failed_stage"])
    client.set_tag(run_id, "mlstrategy.error", tags["mlstrategy.error"][:4000])
    client.set_terminated(run_id, "FAILED")
    return run_id


def log_nested_run(
    experiment: str,
    execution: str,
    name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | None],
    tags: Mapping[str, str],
    parent: str | None = None,
    curves: Mapping[str, Iterable[float] | Mapping[int, float]] | None = None,
) -> str:
    """A finished child run (a recipe iteration, a sweep, a sweep trial) of `parent`, by default the
    execution's run; `curves` are per-epoch series (step = epoch), or {step: value} (a sweep's anytime
    curve: step = epochs spent). Returns the run id."""
    # A sweep logs one run per trial under its own: no lookup of the execution's run for each of them.
    client, experiment_id = _client(experiment)
    parent = parent or _execution_run(client, experiment_id, execution)
    run = client.create_run(
        experiment_id, run_name=name, tags=mask_secrets({"mlflow.parentRunId": parent, **tags})
    )
    present = {k: v for k, v in metrics.items() if v is not None}
    _log_batch(client, run.info.run_id, params, present, tags, curves)
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id

"""The MLflow model registry: every execution's model as a new version of params.yaml
mlflow.registered_model, with a signature and an input example; the alias `challenger` marks the newest,
`champion` the one in service. `promote` and `rollback` move the champion (the scheduled run promotes
through `promote` too).

Each promotion records the champion it replaced on the new champion's version (tag
`mlstrategy.previous_champion`), so a rollback goes back one promotion at a time.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines import tracking
from pipelines.errors import UserError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
PREVIOUS = "mlstrategy.previous_champion"


def register(experiment: str, name: str, run_id: str, model_file: Path, example: np.ndarray) -> str:
    """Log the Keras model at `model_file` into run `run_id` (MLflow's keras flavor, with the signature
    inferred from `example`, the first rows of the inputs, which is also the input example) and register
    it as a new version of `name`, aliased challenger; returns the version."""
    import keras
    import mlflow.keras
    from mlflow.models import infer_signature

    client = tracking.client(experiment)
    model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    signature = infer_signature(example, np.asarray(model(example)))
    with tempfile.TemporaryDirectory() as tmp:
        # Saved, then logged: keras.log_model with an input example writes into a folder it has not made
        # yet (mlflow/mlflow#16183); save_model into an existing empty folder does not.
        path = Path(tmp, "model")
        path.mkdir()
        mlflow.keras.save_model(
            model,
            str(path),
            signature=signature,
            input_example=example,
            pip_requirements=[f"keras=={keras.__version__}"],  # not inferred: that reloads the model
        )
        client.log_artifacts(run_id, str(path), "model")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="mlstrategy's pipeline model (mlstrategy run)")
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def version_of(experiment: str, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when there is none (or no registered model yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return tracking.client(experiment).get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_file(experiment: str, name: str, version: str) -> Path:
    """The .keras file of version `version` of `name`, downloaded (load it with Keras' safe mode)."""
    import mlflow.artifacts

    tracking.client(experiment)  # points mlflow at this project's tracking store
    return Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")) / "data" / "model.keras"


@dataclass(frozen=True)
class Moved:
    """A change of champion: the version before (None: there was none) and after."""

    before: str | None
    after: str


def promote(experiment: str, name: str, version: str | None = None) -> Moved:
    """Make `version` (default: the challenger) the champion, remembering the champion it replaces."""
    client = tracking.client(experiment)
    if version is None:
        challenger = version_of(experiment, name, CHALLENGER)
        if challenger is None:
            raise UserError(f"registered model '{name}' has no {CHALLENGER}: run `mlstrategy run` first")
        version = str(challenger.version)
    _check_version(client, name, version)
    before = version_of(experiment, name, CHAMPION)
    if before is not None and str(before.version) == version:
        return Moved(version, version)
    if before is not None:
        client.set_model_version_tag(name, version, PREVIOUS, str(before.version))
    client.set_registered_model_alias(name, CHAMPION, version)
    return Moved(None if before is None else str(before.version), version)


def rollback(experiment: str, name: str) -> Moved:
    """Give the champion alias back to the version the current champion replaced."""
    client = tracking.client(experiment)
    current = version_of(experiment, name, CHAMPION)
    if current is None:
        raise UserError(f"registered model '{name}' has no {CHAMPION} to roll back")
    previous = current.tags.get(PREVIOUS)
    if not previous:
        raise UserError(
            f"version {current.version} of '{name}' is the first champion: nothing to roll back to"
        )
    client.delete_model_version_tag(name, str(current.version), PREVIOUS)  # a later promote sets it anew
    client.set_registered_model_alias(name, CHAMPION, previous)
    return Moved(str(current.version), previous)


def _check_version(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise UserError(f"registered model '{name}' has no version {version}") from None

"""The MLflow model registry: every execution's model as a new version of params.yaml
mlflow.registered_model, a pyfunc that takes raw rows and answers in the user's labels (`tracking.serving`)
with a signature and an input example; the alias `challenger` marks the newest, `champion` the one in
service. `promote` and `rollback` move the champion (the scheduled run promotes
through `promote` too).

Each promotion records the champion it replaced on the new champion's version (tag
`mlstrategy.previous_champion`), so a rollback goes back one promotion at a time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.errors import Unavailable, UserError
from pipelines.store.params import DataParams
from pipelines.store.tables import feature_columns
from pipelines.tracking import runs

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.tracking import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
PREVIOUS = "mlstrategy.previous_champion"

# The registered model's code: logged by path as the pyfunc, not imported here. A stage that registers a
# model depends on it (`pipelines.running.deps` reads CODE_DEPS as imports).
CODE_DEPS = ("pipelines.tracking.serving",)
SERVING = Path(__file__).parents[2].joinpath(*CODE_DEPS[0].split(".")).with_suffix(".py")


def serving_schema(data: DataParams, frame: pd.DataFrame, classes: list[Any]) -> dict[str, Any]:
    """What the registered model needs to read raw rows (`tracking.serving`): the data's kind (table,
    text, or rows of numbers), its feature columns, a table's column kinds, date formats and markers of
    missing values, the label column and the class list in the labels' own type. frame: rows of the
    data (the train split), whose columns decide the features."""
    kind = "table" if data.features is not None else "text" if data.text_column else "rows"
    return {
        "kind": kind,
        "features": feature_columns(list(frame.columns), data),
        "kinds": data.kinds,
        "date_formats": dict(data.date_formats),
        "na_values": list(data.na_values),
        "label_column": data.label_column,
        "classes": [label.item() if hasattr(label, "item") else label for label in classes],
    }


def signature_for(schema: dict[str, Any], frame: pd.DataFrame) -> ModelSignature:
    """The raw rows' signature, written from the data rather than inferred from a sample: each feature
    column by name, optional where `frame` (the train split) has missing values, so that a row may leave
    it out. A column that is never missing keeps the type the file gives it (string, boolean, datetime);
    numbers, and any column that can be missing, are `Any`: MLflow refuses an int64 column for a double
    (and floats for a long), and pandas reads a column by what it holds (whole numbers as int64 until one
    is missing, then float64; flags as bool, then object; text as str, or float64 when every value of a
    batch is missing). `model_inputs` reads them all, and names any value it cannot. The answer is the
    label column in the classes' type; `probabilities` (bool) asks for class probabilities instead."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    def type_of(values: pd.Series) -> Any:
        if values.isna().any():
            return AnyType()
        if pd.api.types.is_bool_dtype(values):
            return "boolean"
        if pd.api.types.is_numeric_dtype(values):
            return AnyType()
        if pd.api.types.is_datetime64_any_dtype(values):
            return "datetime"
        return "string"

    inputs = Schema(
        [ColSpec(type_of(frame[c]), c, required=not frame[c].isna().any()) for c in schema["features"]]
    )
    classes = pd.Series(schema["classes"])
    answer = {"b": "boolean", "i": "long", "f": "double"}.get(classes.dtype.kind, "string")
    outputs = Schema([ColSpec(answer, schema["label_column"])])
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("probabilities", "boolean", False)]))


def register(
    experiment: str, name: str, run_id: str, model_file: Path, schema: dict[str, Any], rows: pd.DataFrame
) -> str:
    """Log the Keras model at `model_file` into run `run_id` as a pyfunc that takes raw rows and answers
    in the user's labels (`tracking.serving`, with the serving `schema`), its signature from `rows` (the
    train split: types and missing values) and five of them as input example, and register it as a new
    version of `name`, aliased challenger; returns the version."""
    from importlib.metadata import version as installed

    import mlflow.pyfunc

    client = runs.client(experiment)
    signature = signature_for(schema, rows)
    with tempfile.TemporaryDirectory() as tmp:
        schema_file = Path(tmp, "serving_schema.json")
        schema_file.write_text(json.dumps(schema, indent=2), encoding="utf-8")
        path = Path(tmp, "model")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=str(SERVING),
            artifacts={"model": str(model_file), "schema": str(schema_file)},
            code_paths=[str(Path(__file__).parents[2] / "components")],
            signature=signature,
            input_example=rows[schema["features"]].head(5),
            # Not inferred: that loads the model again in a subprocess.
            pip_requirements=[f"{p}=={installed(p)}" for p in ("keras", "tensorflow", "pandas", "mlflow")],
        )
        client.log_artifacts(run_id, str(path), "model")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="mlstrategy's pipeline model (mlstrategy run)")
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id).version
    client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


# What the registry answers when it has no such model or alias: "none". Any other failure means the
# answer is unknown (a store that is locked, a tracking server that is down), never "none": a run that
# took it for "no champion" would promote its challenger unvetted.
def version_of(experiment: str, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the registry says there is none (or no registered model
    yet); Unavailable when it cannot say."""
    from mlflow.exceptions import MlflowException

    try:
        return runs.client(experiment).get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if says_not_found(error):
            return None
        raise unavailable(error, f"looking up the {alias} of '{name}'") from None
    except OSError as error:  # a file store that cannot be read
        raise unavailable(error, f"looking up the {alias} of '{name}'") from None


def says_not_found(error: Exception) -> bool:
    """Whether an MLflow error is the registry's answer "no such model, version or alias"."""
    code, message = getattr(error, "error_code", ""), str(error)
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in message)


def unavailable(error: Exception, doing: str) -> Unavailable:
    """The registry did not answer while `doing`: the message names the tracking URI and what was kept."""
    import mlflow

    reason = str(error).splitlines()[0][:300]
    return Unavailable(
        f"the MLflow registry at {mlflow.get_tracking_uri()} did not answer while {doing} ({reason}); "
        "nothing was promoted or changed: start it (or fix MLFLOW_TRACKING_URI) and run again"
    )


def model_file(experiment: str, name: str, version: str, into: Path) -> Path:
    """The .keras file of version `version` of `name`, downloaded into the folder `into` (the caller's to
    remove; load it with Keras' safe mode)."""
    import mlflow.artifacts

    runs.client(experiment)  # points mlflow at this project's tracking store
    try:
        folder = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(into)))
    except Exception as error:
        if says_not_found(error):
            raise UserError(f"registered model '{name}' has no version {version}") from None
        raise unavailable(error, f"downloading version {version} of '{name}'") from None
    # The pyfunc keeps the .keras file among its artifacts; versions registered before, in keras' flavor.
    found = sorted((folder / "artifacts").glob("*.keras"))
    return found[0] if found else folder / "data" / "model.keras"


@dataclass(frozen=True)
class Moved:
    """A change of champion: the version before (None: there was none) and after."""

    before: str | None
    after: str


def promote(experiment: str, name: str, version: str | None = None) -> Moved:
    """Make `version` (default: the challenger) the champion, remembering the champion it replaces."""
    client = runs.client(experiment)
    if version is None:
        challenger = version_of(experiment, name, CHALLENGER)
        if challenger is None:
            raise UserError(f"registered model '{name}' has no {CHALLENGER}: run `mlstrategy run` first")
        version = str(challenger.version)
    _check_version(client, name, version)
    before = version_of(experiment, name, CHAMPION)
    if before is not None and str(before.version) == version:
        return Moved(version, version)
    with _answering(f"making version {version} of '{name}' the {CHAMPION}"):
        # The alias moves last: killed between the two writes, the old champion stays, and the tag left on
        # this version is set again by the promotion the next run finishes.
        if before is not None:
            client.set_model_version_tag(name, version, PREVIOUS, str(before.version))
        client.set_registered_model_alias(name, CHAMPION, version)
    return Moved(None if before is None else str(before.version), version)


def rollback(experiment: str, name: str) -> Moved:
    """Give the champion alias back to the version the current champion replaced."""
    client = runs.client(experiment)
    current = version_of(experiment, name, CHAMPION)
    if current is None:
        raise UserError(f"registered model '{name}' has no {CHAMPION} to roll back")
    previous = current.tags.get(PREVIOUS)
    if not previous:
        raise UserError(
            f"version {current.version} of '{name}' is the first champion: nothing to roll back to"
        )
    with _answering(f"giving the {CHAMPION} of '{name}' back to version {previous}"):
        client.delete_model_version_tag(name, str(current.version), PREVIOUS)  # a later promote sets it anew
        client.set_registered_model_alias(name, CHAMPION, previous)
    return Moved(str(current.version), previous)


@contextmanager
def _answering(doing: str) -> Iterator[None]:
    """A change of the registry that fails (the server or store does not answer) raises Unavailable."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as error:
        raise unavailable(error, doing) from None


def _check_version(client: MlflowClient, name: str, version: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        if says_not_found(error):
            raise UserError(f"registered model '{name}' has no version {version}") from None
        raise unavailable(error, f"looking up version {version} of '{name}'") from None

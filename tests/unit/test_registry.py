"""The model registry: each run's model a new version aliased challenger; promote and rollback move the
champion one promotion at a time (a real MLflow store in a temporary SQLite file)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import UserError
from pipelines.tracking import registry


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "model.keras")
    return tmp_path / "model.keras"


def new_version(model_file) -> str:
    from pipelines.store.params import DataParams
    from pipelines.tracking import runs

    client = runs.client("e")
    run = client.create_run(client.get_experiment_by_name("e").experiment_id)
    rows = pd.DataFrame(np.zeros((5, 4), np.float32), columns=list("abcd")).assign(label=[0, 1, 2, 0, 1])
    data = DataParams(source_column=None, target_sources=[], labels=[0, 1, 2], label_column="label")
    schema = registry.serving_schema(data, rows.assign(id="x"), [0, 1, 2])
    return registry.register("e", "m", run.info.run_id, model_file, schema, rows)


def champion() -> str | None:
    found = registry.version_of("e", "m", registry.CHAMPION)
    return None if found is None else str(found.version)


def test_versions_aliases_promote_and_rollback(store, tmp_path):
    with pytest.raises(UserError, match="'m' has no challenger: run `mlstrategy run` first"):
        registry.promote("e", "m")
    assert [new_version(store) for _ in range(3)] == ["1", "2", "3"]
    assert str(registry.version_of("e", "m", registry.CHALLENGER).version) == "3"
    model_dir = registry.model_file("e", "m", "3", tmp_path).parent.parent
    assert model_dir.is_relative_to(tmp_path)  # downloaded where asked, nothing left in a temp folder
    assert {"MLmodel", "input_example.json"} <= {p.name for p in model_dir.iterdir()}  # signature in MLmodel
    assert "signature" in (model_dir / "MLmodel").read_text()

    assert registry.promote("e", "m", "1") == registry.Moved(None, "1")
    assert registry.promote("e", "m", "2") == registry.Moved("1", "2")
    assert registry.promote("e", "m") == registry.Moved("2", "3")  # the challenger
    assert registry.rollback("e", "m") == registry.Moved("3", "2") and champion() == "2"
    assert registry.rollback("e", "m") == registry.Moved("2", "1")
    with pytest.raises(UserError, match="version 1 of 'm' is the first champion: nothing to roll back to"):
        registry.rollback("e", "m")
    with pytest.raises(UserError, match="registered model 'm' has no version 9"):
        registry.promote("e", "m", "9")
    assert champion() == "1"


def test_the_signature_keeps_types_that_cannot_change_and_lets_the_others_be_any():
    from mlflow.types.schema import AnyType

    rows = pd.DataFrame(
        {
            "city": ["Oslo", "Lima", "Oslo"],  # never missing: a string
            "flag": [True, None, False],  # missing once: pandas reads object, or bool in a full batch
            "n": [1, 2, 3],  # int64 now, float64 once a value is missing
            "note": ["late", None, None],
            "label": ["a", "b", "a"],
        }
    )
    schema = {"features": ["city", "flag", "n", "note"], "classes": ["a", "b"], "label_column": "label"}
    inputs = {spec.name: spec for spec in registry.signature_for(schema, rows).inputs.inputs}
    assert inputs["city"].type.name == "string" and inputs["city"].required
    assert all(isinstance(inputs[name].type, AnyType) for name in ("flag", "n", "note"))
    assert not inputs["flag"].required and inputs["n"].required and not inputs["note"].required


def test_a_registry_that_does_not_answer_is_unknown_not_none(monkeypatch):
    """A transient failure is never read as "no champion": that would promote a challenger unvetted."""
    from pipelines.errors import Unavailable
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(Unavailable, match=rf"the MLflow registry at {url} did not answer"):
        registry.version_of("e", "m", registry.CHAMPION)


def test_an_alias_or_model_the_registry_lacks_is_none(store):
    assert registry.version_of("e", "nothing", registry.CHAMPION) is None  # no such model
    new_version(store)
    assert registry.version_of("e", "m", registry.CHAMPION) is None  # no such alias

"""The registered model, as MLflow loads it: raw rows in, the user's labels out.

An MLflow "model from code" (this file is stored with the model and run by `mlflow.pyfunc.load_model`;
nothing is pickled): it wraps the pipeline's `.keras` model and the data's serving schema (which columns
the model reads, their kinds, date formats and markers of missing values, the label column and the class
list). `predict(frame)` takes a pandas frame of rows as read from the user's file (extra columns, such as
the id, source or label, are ignored; an optional column may be absent, read as missing), turns it into
the model's inputs with the same function training used (`components.columns.model_inputs`; every fitted
step is inside the Keras model), and answers one label per row in the class list's own values and type.
With `params={"probabilities": True}` it answers a frame of class probabilities, one column per class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model


def inputs_for(frame: pd.DataFrame, schema: dict[str, Any]) -> Any:
    """The model's inputs for raw rows under the serving `schema` (`registry.serving_schema`)."""
    from components.columns import model_inputs

    if schema["kind"] == "table":
        return model_inputs(frame, schema["kinds"], schema["date_formats"], schema["na_values"])
    missing = [c for c in schema["features"] if c not in frame.columns]
    if missing:
        raise ValueError(f"the rows lack column(s) {missing[:10]} the model reads")
    if schema["kind"] == "text":
        return frame[schema["features"][0]].astype(str).to_numpy(object)
    return frame[schema["features"]].to_numpy(np.float32)


class RawRowsModel(mlflow.pyfunc.PythonModel):
    """The pipeline's Keras model behind raw rows and the user's label values."""

    def load_context(self, context: Any) -> None:
        from components.training import load_model

        self.model = load_model(context.artifacts["model"])
        self.schema = json.loads(Path(context.artifacts["schema"]).read_text(encoding="utf-8"))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
        from components.columns import decode_labels, label_names
        from components.training import predict_probabilities

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        probabilities = predict_probabilities(self.model, inputs_for(frame, self.schema))
        classes = self.schema["classes"]
        if (params or {}).get("probabilities"):
            return pd.DataFrame(probabilities, columns=label_names(classes), index=frame.index)
        labels = decode_labels(probabilities.argmax(axis=1), classes)
        return pd.Series(labels, name=self.schema["label_column"], index=frame.index)


set_model(RawRowsModel())

"""From a stage's table to model inputs: which columns are features, the class list, and the (x, y) arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.columns import encode_labels, model_inputs
from pipelines.errors import UserError
from pipelines.store.artifacts import RAW_DATA, read_frame, require, split_path
from pipelines.store.params import DataParams


def key_columns(data: DataParams) -> list[str]:
    """The columns that are not features: id, source, label, example weight, annotators' labels, tags."""
    named = (data.id_column, data.source_column, data.label_column, data.weight_column)
    return [c for c in named if c] + list(data.annotator_columns) + list(data.tag_columns)


def feature_columns(columns: Sequence[str], data: DataParams) -> list[str]:
    """Of a table's `columns`: the text column for text data; the columns of data.features that are not
    ignored for a table described there; else every column but the id, source and label columns, in file
    order."""
    if data.text_column:
        if data.text_column not in columns:
            raise UserError(f"params.yaml data.text_column {data.text_column!r} is not a column of the data")
        return [data.text_column]
    if data.features is not None:
        missing = [c for c in data.kinds if c not in columns]
        if missing:
            raise UserError(
                f"params.yaml data.features: {missing} are not columns of the data "
                f"(columns: {list(columns)[:20]})"
            )
        return list(data.kinds)
    features = [c for c in columns if c not in key_columns(data)]
    if not features:
        raise UserError(f"no feature columns: the table has only {list(columns)}")
    return features


def classes(data: DataParams) -> list[Any]:
    """The class list, in the order of the model's outputs: params.yaml data.labels, else the current
    data version's labels (non-negative integers: 0..the largest, as before classes had names; others
    sorted)."""
    if data.labels:
        return list(data.labels)
    labels = pd.read_parquet(require(RAW_DATA, "validate"), columns=[data.label_column])[data.label_column]
    present = labels.dropna()
    if pd.api.types.is_integer_dtype(present) and len(present) and present.min() >= 0:
        return list(range(int(present.max()) + 1))
    return sorted(present.unique().tolist(), key=lambda v: (str(type(v)), v))


def xy(
    frame: pd.DataFrame, data: DataParams, features: list[str], labels: Sequence[Any]
) -> tuple[Any, np.ndarray]:
    """x: (n, len(features)) float32, (n,) strings for text, or a table's {input: (n,) column}
    (`components.columns.model_inputs`); y: (n,) int64 positions of the labels in `labels`."""
    try:
        y = encode_labels(frame[data.label_column], labels, f"column {data.label_column!r}")
        if data.text_column:
            return frame[data.text_column].astype(str).to_numpy(object), y
        if data.features is not None:
            return model_inputs(frame, data.kinds, data.date_formats, data.na_values), y
    except ValueError as error:
        raise UserError(f"params.yaml data: {error}") from None
    return frame[features].to_numpy(np.float32), y


def read_splits(
    data: DataParams, names: tuple[str, ...], synthesized: bool = True
) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[Any, np.ndarray]]]:
    """The named splits' tables (`names` must include train, whose columns decide the features) and the
    (x, y) arrays of those that are not empty (a pipeline may have no train_dev or test). With
    `synthesized`, train and train_dev are the synthesize stage's when it made them."""
    frames = {name: read_frame(split_path(name, synthesized), "split") for name in names}
    features = feature_columns(frames["train"].columns, data)
    labels = classes(data)
    return frames, {name: xy(frame, data, features, labels) for name, frame in frames.items() if len(frame)}


def as_images(x: np.ndarray, data: DataParams) -> np.ndarray:
    """Feature rows x (n, h * w) as images (n, h, w) of params.yaml data.image_shape."""
    shape = data.image_shape
    if shape is None or x.shape[1] != int(np.prod(shape)):
        raise UserError(
            f"params.yaml data.image_shape {None if shape is None else list(shape)} does not hold the "
            f"data's {x.shape[1]} features; set it to the images' shape, or null for data that is not images"
        )
    if len(shape) == 3:  # colour: error analysis measures the luminance
        return x.reshape(-1, *shape).mean(axis=-1)
    return x.reshape(-1, *shape)

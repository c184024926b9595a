"""From a stage's table to model inputs: which columns are features, and the (x, y) arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.artifacts import read_frame, split_path
from pipelines.errors import UserError
from pipelines.params import DataParams


def key_columns(data: DataParams) -> list[str]:
    """The columns that are not features: id, source, label, example weight, annotators' labels, tags."""
    named = (data.id_column, data.source_column, data.label_column, data.weight_column)
    return [c for c in named if c] + list(data.annotator_columns) + list(data.tag_columns)


def feature_columns(columns: Sequence[str], data: DataParams) -> list[str]:
    """Of a table's `columns`: the text column for text data; else every column but the id, source and
    label columns, in file order."""
    if data.text_column:
        if data.text_column not in columns:
            raise UserError(f"params.yaml data.text_column {data.text_column!r} is not a column of the data")
        return [data.text_column]
    features = [c for c in columns if c not in key_columns(data)]
    if not features:
        raise UserError(f"no feature columns: the table has only {list(columns)}")
    return features


def xy(frame: pd.DataFrame, data: DataParams, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """x: (n, len(features)) float32, or (n,) strings for text; y: (n,) int64 labels."""
    if data.text_column:
        return frame[data.text_column].astype(str).to_numpy(object), frame[data.label_column].to_numpy(
            np.int64
        )
    return frame[features].to_numpy(np.float32), frame[data.label_column].to_numpy(np.int64)


def n_classes(data: DataParams, *frames: pd.DataFrame) -> int:
    """Labels are 0..K-1; K comes from params' label set, else from the largest label seen."""
    if data.labels:
        return max(data.labels) + 1
    return int(max(frame[data.label_column].max() for frame in frames)) + 1


def read_splits(
    data: DataParams, names: tuple[str, ...], synthesized: bool = True
) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The named splits' tables (`names` must include train, whose columns decide the features) and the
    (x, y) arrays of those that are not empty (a pipeline may have no train_dev or test). With
    `synthesized`, train and train_dev are the synthesize stage's when it made them."""
    frames = {name: read_frame(split_path(name, synthesized), "split") for name in names}
    features = feature_columns(frames["train"].columns, data)
    return frames, {name: xy(frame, data, features) for name, frame in frames.items() if len(frame)}


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

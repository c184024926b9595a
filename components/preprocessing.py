"""Preprocessing of a table as layers of the model, fitted on the train split only and saved with it, so
that the `.keras` file (and the registered MLflow model around it) takes one input per raw column
(`components.columns.model_inputs`) and training and serving cannot apply different preprocessing.

Per column kind: numbers and flags are standardized with the train split's mean and standard deviation,
missing ones imputed (mean or median) and flagged in a column of their own (`NumericFeatures`, one layer
for all of them); dates
become their year and cyclical calendar parts (month, day of month, weekday, time of day) with a missing
flag (`DateFeature`); categories are looked up in the train split's vocabulary, missing values a category
of their own and unseen ones the out-of-vocabulary bucket, one-hot up to `embed_above` categories and an
embedding above (`StringLookup`, `CategoryEncoding`, `Embedding`); free text is a TF-IDF bag of words
(`TextVectorization`).

Imports Keras at once (the layers are registered classes, found again when a model is loaded): only the
training and prediction paths import this module. String inputs need the TensorFlow backend, as every
Keras string layer does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import ops

from components.columns import MISSING, input_names, unusable_columns
from components.config import TabularConfig
from components.initializers import seeded_initializer

DAYS_PER_YEAR = 365.2425


@keras.saving.register_keras_serializable(package="mlstrategy")
class NumericFeatures(keras.layers.Layer):
    """k columns of numbers, each (batch,) with NaN where missing -> (batch, k + len(flagged)): each
    standardized with the train split's `means` and `stds` (a missing value takes its column's `fills`,
    on the raw scale), then 1.0 where the value was missing for each column index in `flagged`. One
    layer for every number column of a table: a handful of operations per batch whatever k is. Computes
    in float32 whatever the precision policy: a year or a price loses its digits in bfloat16."""

    def __init__(
        self,
        means: list[float],
        stds: list[float],
        fills: list[float],
        flagged: list[int] | tuple[int, ...] = (),
        **kwargs: Any,
    ) -> None:
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.means, self.stds, self.fills = [list(map(float, v)) for v in (means, stds, fills)]
        self.flagged = [int(i) for i in flagged]

    def call(self, inputs: Any) -> Any:
        x = ops.stack([ops.cast(column, "float32") for column in inputs], axis=-1)
        missing = ops.isnan(x)
        z = (ops.where(missing, ops.convert_to_tensor(self.fills), x) - ops.convert_to_tensor(self.means)) / (
            ops.convert_to_tensor(self.stds)
        )
        if not self.flagged:
            return z
        flags = ops.cast(ops.take(missing, ops.convert_to_tensor(self.flagged, "int32"), axis=1), "float32")
        return ops.concatenate([z, flags], axis=-1)

    def compute_output_shape(self, input_shape: list) -> tuple:
        return (input_shape[0][0], len(self.means) + len(self.flagged))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "means": self.means,
            "stds": self.stds,
            "fills": self.fills,
            "flagged": self.flagged,
        }


@keras.saving.register_keras_serializable(package="mlstrategy")
class DateFeature(keras.layers.Layer):
    """(batch,) days since 1970-01-01 (a fraction for the time of day), NaN where missing -> (batch,
    8, or 10 `with_time`): the year standardized with the train split's `year_mean` and `year_std`, then
    sine and cosine of the month, the day of the month, the weekday (and the time of day), then 1.0
    where the date was missing (its other parts 0). Calendar arithmetic in float32: exact for every day
    of years 1 to 9999."""

    def __init__(self, year_mean: float, year_std: float, with_time: bool = False, **kwargs: Any) -> None:
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.year_mean, self.year_std, self.with_time = float(year_mean), float(year_std), with_time

    def call(self, x: Any) -> Any:
        x = ops.expand_dims(ops.cast(x, "float32"), -1)
        missing = ops.isnan(x)
        days = ops.where(missing, 0.0, x)
        day = ops.floor(days)
        _, month, day_of_month = civil_from_days(day)
        present = 1.0 - ops.cast(missing, "float32")

        def cycle(value: Any, period: float) -> list:
            angle = 2 * math.pi * value / period
            return [ops.sin(angle) * present, ops.cos(angle) * present]

        # The year as a continuous quantity, as its mean and deviation were measured (`_date`).
        parts = [(1970.0 + days / DAYS_PER_YEAR - self.year_mean) / self.year_std * present]
        parts += cycle(month - 1, 12) + cycle(day_of_month - 1, 31)
        parts += cycle(ops.mod(day + 3, 7), 7)  # 1970-01-01 was a Thursday: Monday is 0
        if self.with_time:
            parts += cycle(days - day, 1)
        return ops.concatenate([*parts, ops.cast(missing, "float32")], axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, 10 if self.with_time else 8)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "year_mean": self.year_mean,
            "year_std": self.year_std,
            "with_time": self.with_time,
        }


def civil_from_days(day: Any) -> tuple[Any, Any, Any]:
    """Year, month (1-12) and day of month (1-31) of whole days since 1970-01-01 (any tensor of floats):
    the proleptic Gregorian calendar by H. Hinnant's days-to-civil algorithm, in floor divisions."""
    z = day + 719468.0
    era = ops.floor(z / 146097.0)
    day_of_era = z - era * 146097.0
    year_of_era = ops.floor(
        (
            day_of_era
            - ops.floor(day_of_era / 1460.0)
            + ops.floor(day_of_era / 36524.0)
            - ops.floor(day_of_era / 146096.0)
        )
        / 365.0
    )
    day_of_year = day_of_era - (
        365.0 * year_of_era + ops.floor(year_of_era / 4.0) - ops.floor(year_of_era / 100.0)
    )
    shifted_month = ops.floor((5.0 * day_of_year + 2.0) / 153.0)  # March is 0
    day_of_month = day_of_year - ops.floor((153.0 * shifted_month + 2.0) / 5.0) + 1.0
    month = ops.where(shifted_month < 10.0, shifted_month + 3.0, shifted_month - 9.0)
    year = year_of_era + era * 400.0 + ops.cast(month <= 2.0, "float32")
    return year, month, day_of_month


# A table model's own names all hold a '.', which no column's input name does (`input_name`): a column
# named "softmax", "features" or "x_lookup" never meets a layer of the same name.
PREPROCESSING, CLASSIFIER = "table.preprocessing", "table.classifier"
NUMBERS = "table.numbers"  # the preprocessing's output of every number and flag column


def table_preprocessing(
    columns: Mapping[str, str], config: TabularConfig, x_train: Mapping[str, np.ndarray]
) -> keras.Model:
    """The fixed part of a table model's preprocessing, fitted on `x_train` (the train split's
    `model_inputs`): a model named PREPROCESSING from one input per column of `columns` that is not
    ignored ({input name: (batch,)}) to {NUMBERS: every number and flag column standardized, with missing
    flags; "<name>.date": a date column's calendar parts; "<name>.lookup": a category's index in the
    vocabulary; "<name>.text": a free-text column as it is}. Columns constant or entirely missing on train
    keep their input, which nothing reads (`components.columns.unusable_columns`)."""
    kinds = {column: kind for column, kind in columns.items() if kind != "ignore"}
    names = input_names(kinds)
    unusable = unusable_columns(x_train, kinds)
    inputs = {
        names[c]: keras.Input(
            shape=(), dtype="string" if k in ("categorical", "text") else "float32", name=names[c]
        )
        for c, k in kinds.items()
    }
    outputs: dict[str, Any] = {}
    numbers = [names[c] for c, kind in kinds.items() if kind in ("numeric", "boolean") and c not in unusable]
    if numbers:
        outputs[NUMBERS] = _numbers(numbers, x_train, config)([inputs[name] for name in numbers])
    for column, kind in kinds.items():
        name = names[column]
        if column in unusable or kind in ("numeric", "boolean"):
            continue
        if kind == "date":
            outputs[f"{name}.date"] = _date(name, x_train[name])(inputs[name])
        elif kind == "categorical":
            outputs[f"{name}.lookup"] = _lookup(name, x_train[name], config)(inputs[name])
        else:  # free text: vectorized where the model learns (`encoded_features`)
            outputs[f"{name}.text"] = inputs[name]
    if not outputs:
        raise ValueError(
            f"no column varies on the train split ({', '.join(f'{c}: {w}' for c, w in unusable.items())})"
        )
    return keras.Model(inputs, outputs, name=PREPROCESSING)


def encoded_features(
    preprocessing: keras.Model,
    config: TabularConfig,
    x_train: Mapping[str, np.ndarray],
    seed: int = 0,
    l2: float = 0.0,
) -> tuple[dict[str, Any], Any]:
    """The inputs of a table model's classifier (one per output of `preprocessing`) and the features it
    learns from, (batch, width): numbers and dates as they come, each category one-hot (up to
    `embed_above` of them) or embedded (its vectors under the same `l2` penalty as the head's weights:
    the course's L2 knob regularizes every weight), each free text a TF-IDF bag of words fitted on
    `x_train`."""
    inputs, parts = {}, []
    for key, tensor in preprocessing.output.items():
        inputs[key] = keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=key)
        name = key.rsplit(".", 1)[0]
        if key.endswith(".lookup"):  # a category's index in its vocabulary
            size = preprocessing.get_layer(key).vocabulary_size()
            if size - 2 <= config.embed_above:  # the vocabulary holds the missing category and the OOV bucket
                parts.append(
                    keras.layers.CategoryEncoding(size, output_mode="one_hot", name=f"{name}.one_hot")(
                        inputs[key]
                    )
                )
            else:
                dim = config.embedding_dim or min(16, round(1.6 * size**0.56))  # fast.ai's rule of thumb
                initializer = seeded_initializer("uniform", seed + len(parts))
                regularizer = keras.regularizers.L2(l2) if l2 else None
                parts.append(
                    keras.layers.Embedding(
                        size,
                        dim,
                        embeddings_initializer=initializer,
                        embeddings_regularizer=regularizer,
                        name=f"{name}.embedding",
                    )(inputs[key])
                )
        elif key.endswith(".text"):
            vectorize = keras.layers.TextVectorization(
                max_tokens=config.max_tokens, output_mode="tf_idf", name=f"{name}.words"
            )
            vectorize.adapt(x_train[name])
            parts.append(vectorize(inputs[key]))
        else:
            parts.append(inputs[key])
    encoded = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="table.features")(parts)
    return inputs, encoded


def _numbers(names: list[str], x_train: Mapping[str, np.ndarray], config: TabularConfig) -> NumericFeatures:
    """The number and flag columns' standardization and imputation, fitted on the train split; a missing
    flag for each column that had a missing value there (with `missing_indicator`)."""
    means, stds, fills, flagged = [], [], [], []
    for i, name in enumerate(names):
        values = x_train[name]
        present = values[~np.isnan(values)].astype(np.float64)
        means.append(float(present.mean()))
        stds.append(float(present.std()) or 1.0)
        fills.append(float(np.median(present)) if config.impute == "median" else means[-1])
        if config.missing_indicator and np.isnan(values).any():
            flagged.append(i)
    return NumericFeatures(means, stds, fills, flagged, name=NUMBERS)


def _date(name: str, values: np.ndarray) -> DateFeature:
    present = values[~np.isnan(values)].astype(np.float64)
    years = 1970 + present / DAYS_PER_YEAR
    with_time = bool(np.any(present != np.floor(present)))
    return DateFeature(float(years.mean()), float(years.std()) or 1.0, with_time, name=f"{name}.date")


def _lookup(name: str, values: np.ndarray, config: TabularConfig) -> keras.layers.StringLookup:
    """The train split's categories, most frequent first (ties by value), at most `max_categories`, the
    missing category always among them (index 1); the others fall into the out-of-vocabulary bucket
    (index 0)."""
    import pandas as pd

    counts = pd.Series(values).value_counts()
    counts = counts.drop([MISSING, "[UNK]"], errors="ignore")  # '[UNK]' is the lookup's own OOV token
    order = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    vocabulary = [MISSING] + [value for value, _ in order[: config.max_categories]]
    return keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, name=f"{name}.lookup")


def split_preprocessing(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """A table model's two parts (`components.models.build_model`), its fixed preprocessing and the
    classifier that learns from its output; None for another model."""
    names = {layer.name for layer in model.layers}
    if not {PREPROCESSING, CLASSIFIER} <= names:
        return None
    return model.get_layer(PREPROCESSING), model.get_layer(CLASSIFIER)


def preprocess(
    preprocessing: keras.Model, x: Mapping[str, np.ndarray], chunk: int = 8192
) -> dict[str, np.ndarray]:
    """`preprocessing`'s outputs for the rows of x ({name: array}), `chunk` rows a call."""
    from components.columns import n_rows, take

    parts = [preprocessing(take(x, slice(i, i + chunk)), training=False) for i in range(0, n_rows(x), chunk)]
    found = {name: np.concatenate([ops.convert_to_numpy(part[name]) for part in parts]) for name in parts[0]}
    # Text passes through as TensorFlow's bytes, which Keras' fit refuses in an object array: str again.
    return {
        name: np.array([v.decode() for v in array], dtype=object) if array.dtype == object else array
        for name, array in found.items()
    }


class OnModel(keras.callbacks.Callback):
    """`callback` acting on `model` while a part of it is fitted (a table model's layers after its
    preprocessing, `split_preprocessing`): it reads, saves and restores the whole model, and when it stops
    the whole model's training, the fit stops."""

    def __init__(self, callback: keras.callbacks.Callback, model: keras.Model) -> None:
        super().__init__()
        self.callback, self.whole, self.fitted = callback, model, None

    def set_model(self, model: keras.Model) -> None:
        self.fitted = model
        self.callback.set_model(self.whole)

    def set_params(self, params: dict) -> None:
        self.callback.set_params(params)

    def _forward(self, hook: str, *args: Any, **kwargs: Any) -> None:
        if hook == "on_train_begin":
            self.whole.stop_training = False
        getattr(self.callback, hook)(*args, **kwargs)
        if self.whole.stop_training and self.fitted is not None:
            self.fitted.stop_training = True


def _forwarding(hook: str) -> Any:
    def method(self: OnModel, *args: Any, **kwargs: Any) -> None:
        self._forward(hook, *args, **kwargs)

    method.__name__ = hook
    return method


# Every hook Keras calls (on_epoch_end, on_train_batch_begin, ...) goes to the wrapped callback.
for _hook in [name for name in vars(keras.callbacks.Callback) if name.startswith("on_")]:
    setattr(OnModel, _hook, _forwarding(_hook))

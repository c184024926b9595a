"""A table's preprocessing as layers of the model: fitted on train only, saved with it, the same after a
reload (strings and missing values included); the calendar arithmetic; training through its two parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.columns import model_inputs
from components.config import TrainConfig
from components.training import load_model, predict_probabilities, train

KINDS = {
    "size": "numeric",
    "heavy": "boolean",
    "colour": "categorical",
    "town": "categorical",
    "when": "date",
    "note": "text",
    "same": "numeric",
}


def table(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": np.where(rng.random(n) < 0.1, np.nan, rng.normal(50, 10, n)),
            "heavy": rng.choice(["yes", "no", None], n),
            "colour": rng.choice(["red", "green", "blue", None], n),
            "town": rng.choice([f"town{i}" for i in range(40)], n),  # more than embed_above: embedded
            "when": pd.Series(pd.date_range("2019-01-01", periods=n, freq="37h")).dt.strftime(
                "%Y-%m-%d %H:%M"
            ),
            "note": rng.choice(["late delivery", "fine", None, "broken box on arrival"], n),
            "same": np.ones(n),
        }
    )
    y = ((frame["colour"] == "red") | (frame["size"].fillna(50) > 55)).to_numpy(np.int64)
    return frame, y


def inputs(frame: pd.DataFrame) -> dict:
    return model_inputs(frame, KINDS, {"when": "%Y-%m-%d %H:%M"})


def test_calendar_parts_are_exact_and_missing_dates_flagged():
    import keras

    from components.preprocessing import DateFeature, civil_from_days

    days = np.random.default_rng(0).integers(-150_000, 150_000, 2000).astype(np.float32)
    year, month, day = (
        keras.ops.convert_to_numpy(v) for v in civil_from_days(keras.ops.convert_to_tensor(days))
    )
    stamps = pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")
    np.testing.assert_array_equal(year, stamps.year)
    np.testing.assert_array_equal(month, stamps.month)
    np.testing.assert_array_equal(day, stamps.day)
    parts = keras.ops.convert_to_numpy(DateFeature(2000.0, 10.0)(np.array([0.0, np.nan], np.float32)))
    assert parts.shape == (2, 8) and parts[1].tolist() == [0.0] * 7 + [1.0] and parts[0, 7] == 0.0
    thursday = 2 * np.pi * 3 / 7  # 1970-01-01: the weekday's angle, Monday 0
    assert parts[0, 5] == pytest.approx(np.sin(thursday), abs=1e-6)


def test_the_saved_model_takes_raw_columns_and_answers_the_same_after_a_reload(tmp_path):
    frame, y = table()
    config = TrainConfig(columns=tuple(KINDS.items()), epochs=2, hidden_units=(16,))
    model, _ = train(config, inputs(frame), y, 2)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    unseen = frame.head(5).assign(colour=["purple", None, "red", "red", "red"], town="nowhere")
    unseen.loc[2, ["size", "when", "note"]] = [np.nan, None, None]
    for rows in (frame, unseen):
        np.testing.assert_allclose(
            predict_probabilities(loaded, inputs(rows)), predict_probabilities(model, inputs(rows)), rtol=1e-6
        )
    preprocessing = loaded.get_layer("table.preprocessing")
    found = preprocessing(inputs(unseen))
    # An unseen category is the out-of-vocabulary bucket (0), a missing one a category of its own (1).
    assert np.asarray(found["colour.lookup"])[:2].tolist() == [0, 1]
    names = {layer.name for layer in loaded.get_layer("table.classifier").layers}
    assert {"colour.one_hot", "town.embedding", "note.words"} <= names
    numbers = loaded.get_layer("table.preprocessing").get_layer("table.numbers")
    assert len(numbers.means) == 2  # size and heavy: "same", constant on train, is read by nothing
    assert "same" in {tensor.name for tensor in loaded.inputs}


def test_preprocessing_is_fitted_on_train_only():
    frame, y = table()
    kinds = {"size": "numeric", "colour": "categorical"}
    config = TrainConfig(columns=tuple(kinds.items()), epochs=1, hidden_units=(4,))
    dev = frame.assign(size=frame["size"] + 1000, colour="violet")  # validated on, never fitted on
    model, _ = train(config, model_inputs(frame, kinds), y, 2, validation=(model_inputs(dev, kinds), y))
    preprocessing = model.get_layer("table.preprocessing")
    assert preprocessing.get_layer("table.numbers").means == [pytest.approx(frame["size"].mean())]
    assert "violet" not in preprocessing.get_layer("colour.lookup").get_vocabulary()


def test_only_the_classifier_trains_and_callbacks_see_the_whole_model():
    import keras

    frame, y = table()
    x = inputs(frame)
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(predict_probabilities(self.model, x).shape)  # the whole model: raw columns in
            if epoch == 1:
                self.model.stop_training = True

    config = TrainConfig(columns=tuple(KINDS.items()), epochs=5, hidden_units=(8,))
    model, history = train(config, x, y, 2, validation=(x, y), callbacks=[Watch()])
    assert seen == [(len(y), 2)] * 2 and len(history["loss"]) == 2 and "val_accuracy" in history
    assert model.optimizer is model.get_layer("table.classifier").optimizer  # saved weights hold its state


def test_columns_named_like_the_models_own_layers_do_not_collide(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "softmax": rng.choice(list("abc"), n),
            "features": rng.choice(list("xyz"), n),
            "x": rng.choice(list("pq"), n),
            "x_lookup": rng.normal(size=n),
            "dense_0": pd.Series(pd.date_range("2020-01-01", periods=n)).dt.strftime("%Y-%m-%d"),
        }
    )
    kinds = {
        "softmax": "categorical",
        "features": "categorical",
        "x": "categorical",
        "x_lookup": "numeric",
        "dense_0": "date",
    }
    x = model_inputs(frame, kinds)
    model, _ = train(
        TrainConfig(columns=tuple(kinds.items()), epochs=1, hidden_units=(4,)), x, rng.integers(0, 2, n), 2
    )
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(
        predict_probabilities(load_model(tmp_path / "model.keras"), x), predict_probabilities(model, x)
    )


@pytest.mark.parametrize(("categories", "layer"), [(10, "one_hot"), (11, "embedding")])
def test_categories_are_one_hot_up_to_embed_above_and_embedded_beyond(categories, layer):
    n = 200
    frame = pd.DataFrame({"c": [f"v{i % categories}" for i in range(n)]})
    x = model_inputs(frame, {"c": "categorical"})
    model, _ = train(
        TrainConfig(columns=(("c", "categorical"),), epochs=1, hidden_units=(4,)), x, np.arange(n) % 2, 2
    )
    assert f"c.{layer}" in {found.name for found in model.get_layer("table.classifier").layers}


def test_the_year_is_continuous_and_read_as_its_statistics_were_measured():
    import keras

    from components.preprocessing import DateFeature

    days = np.array([18_600.0, 18_630.0, 18_660.0], np.float32)  # Dec 2020 to Feb 2021
    years = 1970 + days / 365.2425
    layer = DateFeature(float(years.mean()), float(years.std()))
    z = keras.ops.convert_to_numpy(layer(days))[:, 0]
    np.testing.assert_allclose(z, (years - years.mean()) / years.std(), atol=1e-3)  # no step at New Year

import math
from dataclasses import replace

import numpy as np
import pytest

from components.config import TrainConfig
from components.initializers import initializer_for
from components.models import build_model
from components.training import learning_rate_schedule, train

X = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
Y = (X[:, 0] > 0).astype("int64")


def test_knobs_reach_the_model():
    config = TrainConfig(hidden_units=(8, 4), batch_norm=True, dropout=0.3, l2=0.01, activation="tanh")
    model = build_model(config, X, 2)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert (
        kinds.count("Dense") == 3 and kinds.count("BatchNormalization") == 2 and kinds.count("Dropout") == 2
    )
    dense = model.get_layer("dense_0")
    assert dense.units == 8 and not dense.use_bias and dense.kernel_regularizer.l2 == pytest.approx(0.01)
    assert type(dense.kernel_initializer).__name__ == "GlorotUniform"
    assert initializer_for(TrainConfig(activation="relu")) == "he_normal"


def test_normalization_is_fitted_on_the_training_data():
    model = build_model(TrainConfig(), X * 3 + 5, 2)
    normalization = model.get_layer("input_normalization")
    assert np.allclose(np.asarray(normalization.mean).ravel(), (X * 3 + 5).mean(axis=0), atol=1e-4)


@pytest.mark.parametrize(
    ("decay", "formula"),
    [
        ("inverse_time", lambda t: 0.1 / (1 + 0.5 * t)),
        ("exponential", lambda t: 0.1 * 0.5**t),
        ("staircase", lambda t: 0.1 * 0.5 ** math.floor(t)),
        ("inverse_sqrt", lambda t: 0.1 * 0.5 / math.sqrt(max(t, 1.0))),
    ],
)
def test_learning_rate_schedules_follow_their_formulas(decay, formula):
    config = TrainConfig(learning_rate=0.1, lr_decay=decay, decay_rate=0.5)
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    for step in (0, 5, 10, 25, 40):
        assert float(schedule(step)) == pytest.approx(formula(step / 10), rel=1e-5)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
def test_same_seed_same_model(optimizer):
    config = TrainConfig(hidden_units=(8,), epochs=2, batch_size=16, optimizer=optimizer)
    first, history = train(config, X, Y, 2)
    second, _ = train(config, X, Y, 2)
    assert set(history) >= {"loss", "accuracy"} and len(history["loss"]) == 2
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_early_stopping_watches_validation():
    # A case built to stall: validation labels are the opposite of train's, so the better the model fits
    # train, the worse its validation loss, from the first epoch on.
    flipped = (X, 1 - Y)
    config = TrainConfig(hidden_units=(4,), epochs=20, early_stopping=True, patience=2, learning_rate=0.05)
    _, stopped = train(config, X, Y, 2, validation=flipped)
    assert "val_loss" in stopped and len(stopped["loss"]) < config.epochs  # stopped early
    # ... `patience` epochs after the best validation loss, not before and not later.
    assert len(stopped["loss"]) == int(np.argmin(stopped["val_loss"])) + 1 + config.patience
    _, full = train(replace(config, early_stopping=False), X, Y, 2, validation=flipped)
    assert len(full["loss"]) == config.epochs  # without early stopping: every epoch
    assert full["val_loss"][: len(stopped["val_loss"])] == pytest.approx(stopped["val_loss"])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_units": ()}, "hidden_units"),
    ],
)
def test_impossible_knobs_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)

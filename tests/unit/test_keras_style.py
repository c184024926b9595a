"""The project's Keras pieces in Keras's own style: top-level, registered once, configs that round-trip,
and a model compiled with the project's schedule saved and loaded through the registration."""

import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from components.callbacks import DevMetricWatch, RestoreWeights
from components.config import TrainConfig
from components.schedules import InverseSqrtDecay
from components.training import learning_rate_schedule


def _expected(step: float, lr: float = 0.1, k: float = 0.5, decay_steps: int = 10) -> float:
    return lr * k / math.sqrt(max(step / decay_steps, 1.0))


def test_the_schedule_round_trips_through_its_config_and_keeps_its_values():
    schedule = InverseSqrtDecay(0.1, 0.5, 10)
    config = schedule.get_config()
    assert config == {"initial_learning_rate": 0.1, "k": 0.5, "decay_steps": 10}
    rebuilt = InverseSqrtDecay.from_config(config)
    assert type(rebuilt) is InverseSqrtDecay and rebuilt.get_config() == config
    for step in (0, 5, 10, 25, 40):
        assert float(rebuilt(step)) == float(schedule(step)) == pytest.approx(_expected(step), rel=1e-6)


def test_the_schedule_is_registered_once_under_the_project_package():
    assert keras.saving.get_registered_name(InverseSqrtDecay) == "mlstrategy>InverseSqrtDecay"
    assert keras.saving.get_registered_object("mlstrategy>InverseSqrtDecay") is InverseSqrtDecay
    config = TrainConfig(learning_rate=0.1, lr_decay="inverse_sqrt", decay_rate=0.5)
    # The same class every time a schedule is built, not a fresh one registered again.
    assert type(learning_rate_schedule(config, 10)) is InverseSqrtDecay
    serialized = keras.saving.serialize_keras_object(InverseSqrtDecay(0.1, 0.5, 10))
    assert serialized["registered_name"] == "mlstrategy>InverseSqrtDecay"
    assert type(keras.saving.deserialize_keras_object(serialized)) is InverseSqrtDecay


def test_a_model_compiled_with_the_schedule_loads_with_the_same_learning_rate(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(InverseSqrtDecay(0.1, 0.5, 10)), loss="mse")
    model.optimizer.build(model.trainable_variables)  # saved with its state: 40 steps taken
    model.optimizer.iterations.assign(40)
    model.save(tmp_path / "model.keras")
    # Loaded in a fresh interpreter that imports nothing but the loader: it registers what it needs.
    code = (
        "import sys; from components.training import load_model; "
        "m = load_model(sys.argv[1], compile=True); s = m.optimizer._learning_rate; "
        "print(type(s).__module__, type(s).__name__, s.get_config()['k'], int(m.optimizer.iterations), "
        "float(m.optimizer.learning_rate))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.keras")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module, name, k, steps, rate = done.stdout.split()[-5:]
    assert (module, name, float(k), int(steps)) == ("components.schedules", "InverseSqrtDecay", 0.5, 40)
    assert float(rate) == pytest.approx(float(model.optimizer.learning_rate), rel=1e-6)
    assert float(rate) == pytest.approx(_expected(40), rel=1e-6)


def _score(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.mean(truth == predicted))


def test_the_callbacks_give_their_plain_arguments_as_config():
    dev = (np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    watch = DevMetricWatch(_score, dev, higher_is_better=False, trained=[0.5, 0.6])
    assert watch.get_config() == {"higher_is_better": False, "trained": [0.5, 0.6]}
    assert watch.curve == [0.5, 0.6] and not watch.pruned
    restore = RestoreWeights(Path("trial.weights.h5"))
    assert restore.get_config() == {"path": "trial.weights.h5"}
    assert RestoreWeights.from_config(restore.get_config()).get_config() == restore.get_config()
    assert keras.saving.get_registered_name(DevMetricWatch) == "mlstrategy>DevMetricWatch"
    assert keras.saving.get_registered_name(RestoreWeights) == "mlstrategy>RestoreWeights"


def test_the_watch_scores_dev_logs_the_metric_and_prunes_when_told():
    x = np.eye(3, dtype=np.float32)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, kernel_initializer="identity")])
    asked = []

    def on_epoch(epoch: int, value: float) -> bool:
        asked.append((epoch, value))
        return epoch == 3

    watch = DevMetricWatch(_score, (x, np.array([0, 1, 0])), on_epoch, higher_is_better=False, trained=[0.1])
    watch.set_model(model)
    model.stop_training = False  # as fit sets it
    logs: dict = {}
    watch.on_epoch_end(0, logs)
    assert watch.curve == [0.1, pytest.approx(2 / 3)] and logs["dev_metric"] == pytest.approx(-2 / 3)
    assert not watch.pruned and not model.stop_training
    watch.on_epoch_end(1, None)
    assert watch.pruned and model.stop_training and [epoch for epoch, _ in asked] == [2, 3]
    assert watch.get_config() == {"higher_is_better": False, "trained": [0.1]}  # its arguments, not its curve


def test_restore_weights_loads_the_saved_weights_and_optimizer_state(tmp_path):
    def compiled(seed: int) -> keras.Model:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer="zeros")])
        model.layers[0].kernel.assign(np.full((3, 2), seed, np.float32))
        model.compile(optimizer="adam", loss="mse")
        return model

    saved = compiled(1)
    saved.optimizer.build(saved.trainable_variables)
    saved.optimizer.iterations.assign(7)
    saved.save_weights(tmp_path / "trial.weights.h5")
    fresh = compiled(2)
    restore = RestoreWeights(tmp_path / "trial.weights.h5")
    restore.set_model(fresh)
    restore.on_train_begin()
    assert np.array_equal(fresh.layers[0].kernel.numpy(), np.ones((3, 2), np.float32))
    assert int(fresh.optimizer.iterations) == 7


def test_importing_training_and_sweep_does_not_import_keras():
    code = "import sys, components.training, components.sweep; print('keras' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]

"""Training a Keras classifier with the course-2 knobs.

Every knob lives in `TrainConfig` (and so in params.yaml): layer sizes, activation and its matched
initializer, batch norm, dropout, L2, the optimizer (SGD with momentum, RMSprop, Adam and their betas),
learning-rate decay, mini-batch size, epochs, early stopping and the seed. Input normalization is a
`keras.layers.Normalization` fitted on the training split only and saved inside the model.

Keras is imported inside the functions: importing this module stays cheap. Only `keras.*` APIs are used
on the training path, so `KERAS_BACKEND=jax` runs it too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import keras

RELU_LIKE = {"relu", "elu", "selu", "gelu", "leaky_relu", "silu", "swish"}
Decay = Literal["none", "inverse_time", "exponential", "staircase", "inverse_sqrt"]


@dataclass(frozen=True)
class TrainConfig:
    """The knobs of one training run; units: learning rate per step, decay `t` in epochs."""

    seed: int = 0
    hidden_units: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    initializer: str = "auto"
    batch_norm: bool = False
    dropout: float = 0.0
    l2: float = 1e-4
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    rho: float = 0.9
    momentum: float = 0.9
    lr_decay: Decay = "none"
    decay_rate: float = 0.95
    decay_epochs: float = 1.0
    batch_size: int = 64
    epochs: int = 40
    early_stopping: bool = False
    patience: int = 5

    def __post_init__(self) -> None:
        positive = {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "epsilon": self.epsilon,
            "decay_epochs": self.decay_epochs,
            "decay_rate": self.decay_rate,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.hidden_units or any(units <= 0 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be positive layer sizes, got {list(self.hidden_units)}")
        for name in ("dropout", "beta_1", "beta_2", "rho", "momentum"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        return values


def seed_everything(seed: int) -> None:
    """Python, NumPy and backend seeds, and deterministic TensorFlow kernels: same data, same model."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def initializer_for(config: TrainConfig) -> str:
    """He initialization for ReLU-like activations, Glorot (Xavier) for tanh/sigmoid, unless set."""
    if config.initializer != "auto":
        return config.initializer
    return "he_normal" if config.activation in RELU_LIKE else "glorot_uniform"


def _seeded_initializer(name: str, seed: int) -> keras.initializers.Initializer:
    """The named initializer with its own seed: an unseeded one draws from Python's global `random`,
    which other threads of the process (Prefect's among them) may also draw from."""
    import keras

    initializer = keras.initializers.get(name)
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": seed})


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning rate as a float or a Keras schedule; `t` counts epochs of `decay_epochs` each.

    inverse_time: lr / (1 + k t); exponential: lr * 0.95^t (continuous); staircase: lr * 0.95^floor(t);
    inverse_sqrt: lr * k / sqrt(t) (for t >= 1; the first epoch keeps lr * k).
    """
    import keras

    lr, k = config.learning_rate, config.decay_rate
    decay_steps = max(1, round(steps_per_epoch * config.decay_epochs))
    schedules = keras.optimizers.schedules
    if config.lr_decay == "none":
        return lr
    if config.lr_decay == "inverse_time":
        return schedules.InverseTimeDecay(lr, decay_steps=decay_steps, decay_rate=k)
    if config.lr_decay in ("exponential", "staircase"):
        return schedules.ExponentialDecay(
            lr, decay_steps=decay_steps, decay_rate=k, staircase=config.lr_decay == "staircase"
        )
    if config.lr_decay == "inverse_sqrt":
        return _inverse_sqrt_decay_class()(lr, k, decay_steps)
    raise ValueError(f"unknown lr_decay {config.lr_decay!r}")


def _inverse_sqrt_decay_class() -> type:
    import keras

    @keras.saving.register_keras_serializable(package="mlstrategy")
    class InverseSqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
        """lr * k / sqrt(t), t = step / decay_steps, floored at t = 1."""

        def __init__(self, initial_learning_rate: float, k: float, decay_steps: int) -> None:
            self.initial_learning_rate = initial_learning_rate
            self.k = k
            self.decay_steps = decay_steps

        def __call__(self, step: Any) -> Any:
            t = keras.ops.maximum(keras.ops.cast(step, "float32") / self.decay_steps, 1.0)
            return self.initial_learning_rate * self.k / keras.ops.sqrt(t)

        def get_config(self) -> dict[str, Any]:
            return {
                "initial_learning_rate": self.initial_learning_rate,
                "k": self.k,
                "decay_steps": self.decay_steps,
            }

    return InverseSqrtDecay


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (beta_1, beta_2, epsilon), RMSprop (rho, epsilon) or SGD with momentum."""
    import keras

    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=config.rho, epsilon=config.epsilon)
    return keras.optimizers.SGD(lr, momentum=config.momentum)


def build_model(config: TrainConfig, x_train: np.ndarray, n_classes: int) -> keras.Model:
    """An MLP: normalization fitted on x_train (n, features), then Dense [+ BatchNorm] + activation
    [+ Dropout] per hidden layer, then a softmax over n_classes."""
    import keras

    if x_train.ndim != 2 or len(x_train) == 0:
        raise ValueError(f"x_train must have shape (n > 0, features), got {x_train.shape}")
    normalization = keras.layers.Normalization(name="input_normalization")
    normalization.adapt(x_train)
    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=(x_train.shape[1],), name="features")
    x = normalization(inputs)
    for i, units in enumerate(config.hidden_units):
        x = keras.layers.Dense(
            units,
            kernel_initializer=_seeded_initializer(initializer_for(config), config.seed + i),
            kernel_regularizer=regularizer,
            use_bias=not config.batch_norm,  # batch norm's beta replaces the bias
            name=f"dense_{i}",
        )(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(config.activation, name=f"{config.activation}_{i}")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, seed=config.seed + i, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(
        n_classes,
        activation="softmax",
        kernel_initializer=_seeded_initializer("glorot_uniform", config.seed + len(config.hidden_units)),
        name="softmax",
    )(x)
    return keras.Model(inputs, outputs, name="mlp")


def train(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit a fresh model on (x_train (n, features) float32, y_train (n,) int labels).

    validation: the (x, y) whose loss and accuracy are recorded per epoch (and watched by early stopping
    when it is on). callbacks: more Keras callbacks (a sweep's pruning watch). Returns the trained model
    and its per-epoch history.
    """
    import keras

    seed_everything(config.seed)
    model = build_model(config, x_train, n_classes)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = list(callbacks)
    if config.early_stopping:
        monitor = "val_loss" if validation is not None else "loss"
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=config.patience, restore_best_weights=True
            )
        )
    history = model.fit(
        x_train,
        y_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=validation,
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    return model, {name: [float(v) for v in values] for name, values in history.history.items()}


def predict_probabilities(model: keras.Model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(n, classes) float: the model's class probabilities for each row of x (n, features), `chunk` rows
    per call."""
    import keras

    # Calling the model directly skips the data pipeline `predict` builds on every call: a sweep scores
    # dev after each epoch, and for small dev sets that pipeline cost more than the training step.
    parts = [
        keras.ops.convert_to_numpy(model(x[i : i + chunk], training=False)) for i in range(0, len(x), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, int(model.output_shape[-1])), np.float32)


def predict_classes(model: keras.Model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(n,) int: the most probable class of each row of x (n, features)."""
    return np.argmax(predict_probabilities(model, x, chunk), axis=1)

"""Training a Keras classifier with the course-2 knobs.

Every knob lives in `TrainConfig` (and so in params.yaml): the model family and its own settings
(`components.models`), layer sizes, activation and its matched initializer, batch norm, dropout, L2,
augmentation, the optimizer (SGD with momentum, RMSprop, Adam and their betas), learning-rate decay,
mini-batch size, epochs, early stopping, checkpoints to resume from after a crash, mixed precision and XLA
compilation (both on by default when there is a GPU) and the seed. Input normalization is fitted on the
training split only and saved inside the model.

Keras is imported inside the functions: importing this module stays cheap. Only `keras.*` APIs are used
on the training path, so `KERAS_BACKEND=jax` runs it too (the text family's tokenizer needs TensorFlow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.columns import n_rows, take
from components.config import Switch, TrainConfig
from components.models import build_model, channels_last

if TYPE_CHECKING:
    import keras


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Python, NumPy and backend seeds, and deterministic TensorFlow kernels: same data, same model.

    TensorFlow refuses XLA under op determinism, so an XLA-compiled fit (`deterministic=False`) is
    seeded but not bit-for-bit reproducible."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config  # disabling is not in tf.config

        if deterministic:
            tf.config.experimental.enable_op_determinism()
        else:
            tf_config.disable_op_determinism()


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
        from components.schedules import InverseSqrtDecay  # imports Keras: only when a schedule is built

        return InverseSqrtDecay(lr, k, decay_steps)
    raise ValueError(f"unknown lr_decay {config.lr_decay!r}")


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam (beta_1, beta_2, epsilon), RMSprop (rho, epsilon) or SGD with momentum."""
    import keras

    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon)
    if config.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=config.rho, epsilon=config.epsilon)
    return keras.optimizers.SGD(lr, momentum=config.momentum)


def with_min_steps(config: TrainConfig, n_examples: int, min_steps: int) -> TrainConfig:
    """config with enough epochs for at least `min_steps` optimizer steps on n_examples: comparisons at
    small training sizes would otherwise stop a model after a handful of steps."""
    steps_per_epoch = math.ceil(n_examples / config.batch_size)
    return replace(config, epochs=max(config.epochs, math.ceil(min_steps / steps_per_epoch)))


def accelerators() -> list[str]:
    """The backend's GPUs (or TPUs), e.g. ['gpu:0']; empty on a CPU-only machine."""
    import keras

    return [device for device in keras.distribution.list_devices() if not device.startswith("cpu")]


def resolve(switch: Switch) -> bool:
    """on, off, or auto: on when there is an accelerator."""
    return switch == "on" or (switch == "auto" and bool(accelerators()))


def use_xla(switch: Switch) -> bool:
    """`jit_compile` resolved: auto is on with an accelerator, and always on JAX, which runs op by op
    (28x slower on CPU, measured; on an H200, 58x below bfloat16 with XLA) when its steps are not compiled."""
    import keras

    return resolve(switch) or (switch == "auto" and keras.backend.backend() == "jax")


@contextmanager
def precision(config: TrainConfig) -> Iterator[str]:
    """Build layers under mixed_bfloat16 (bfloat16 compute, float32 variables) when mixed precision is on:
    Hopper-class GPUs run bfloat16 at full speed and need no loss scaling."""
    import keras

    if not resolve(config.mixed_precision):
        yield keras.config.dtype_policy().name
        return
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy(before)


def train(
    config: TrainConfig,
    x_train: Any,
    y_train: np.ndarray | None,
    n_classes: int,
    validation: tuple[Any, np.ndarray] | None = None,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    backup_dir: Path | None = None,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit a fresh model of the configured family on x_train, y_train (n,) int labels.

    x_train: (n, features) float32 rows (pixels row-major when config.image_shape is set), (n,) strings for
    text, or a `components.inputs.ImageFolder` stream (then y_train is None: the stream has the labels).
    validation: the (x, y) whose loss and accuracy are recorded per epoch (and watched by early stopping
    when it is on). callbacks: more Keras callbacks (a sweep's pruning watch). backup_dir: where to keep the
    checkpoint a crashed run resumes from (with `config.checkpoints`). Returns the trained model and its
    per-epoch history.
    """
    sample = x_train.sample(seed=config.seed) if y_train is None else x_train
    return fit_new(
        config,
        lambda: build_model(config, sample, n_classes),
        x_train,
        y_train,
        validation=validation,
        verbose=verbose,
        callbacks=callbacks,
        backup_dir=backup_dir,
    )


def fit_new(
    config: TrainConfig,
    build: Callable[[], keras.Model],
    x: Any,
    y: np.ndarray | None,
    loss: Any = "sparse_categorical_crossentropy",
    **options: Any,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """The one way a model starts training: seeded (deterministic kernels unless XLA is on), `build()`
    called under the precision policy, then `compile_and_fit` with `loss` and its `options`. Returns the
    model and its per-epoch history."""
    seed_everything(config.seed, deterministic=not use_xla(config.jit_compile))
    with precision(config):
        model = build()
    return model, compile_and_fit(model, config, x, y, loss=loss, **options)


def compile_and_fit(
    model: keras.Model,
    config: TrainConfig,
    x: Any,
    y: np.ndarray | None,
    loss: Any = "sparse_categorical_crossentropy",
    validation: tuple[Any, np.ndarray] | None = None,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    backup_dir: Path | None = None,
) -> dict[str, list[float]]:
    """Compile model with the configured optimizer and fit it: mini-batches of config.batch_size (MixUp or
    CutMix batches when on), early stopping and checkpoints when on. Returns the per-epoch history.

    A table model's preprocessing (`components.preprocessing.split_preprocessing`: its lookups,
    standardization and calendar parts, fixed once adapted) runs once over x and the validation rows, and
    the rest of the model (embeddings, head) trains on its output: the same layers, so nothing differs
    from the saved model, without paying the string lookups in every step of every epoch. `callbacks`
    still see the whole model (`OnModel`)."""
    import keras

    if y is None and config.augment.mixes:
        raise ValueError("augment.mixup and augment.cutmix mix arrays batch by batch, not a stream")
    steps_per_epoch = math.ceil(len(y) / config.batch_size) if y is not None else len(x)
    metrics = ["accuracy"] if loss == "sparse_categorical_crossentropy" else []
    fit_args: dict[str, Any] = {"x": x, "y": y, "batch_size": config.batch_size, "shuffle": True}
    fitted, callbacks = model, list(callbacks)
    if y is None:  # a stream brings its own batches and labels
        fit_args = {"x": x}
    elif isinstance(x, dict):
        from components.preprocessing import OnModel, preprocess, split_preprocessing

        parts = split_preprocessing(model)
        if parts is not None:
            preprocessing, fitted = parts
            fit_args["x"] = preprocess(preprocessing, x)
            if validation is not None:
                validation = (preprocess(preprocessing, validation[0]), validation[1])
            callbacks = [OnModel(callback, model) for callback in callbacks]
    elif config.augment.mixes and loss == "sparse_categorical_crossentropy":
        from components.inputs import MixedBatches

        n_classes = int(model.output_shape[-1])
        fit_args = {
            "x": MixedBatches(
                x,
                y,
                n_classes,
                channels_last(config.image_shape),
                config.batch_size,
                config.augment.mixup,
                config.augment.cutmix,
                config.seed,
            )
        }
        loss = "categorical_crossentropy"  # mixed labels are soft
        if validation is not None:
            validation = (validation[0], np.eye(n_classes, dtype=np.float32)[validation[1]])
    fitted.compile(
        optimizer=make_optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=metrics,
        jit_compile=use_xla(config.jit_compile) and jit_compatible(fitted),
    )
    if fitted is not model:
        # The same optimizer: the whole model's saved weights hold its state (a sweep resumes from them).
        model.compile(optimizer=fitted.optimizer, loss=loss, metrics=metrics)
    if config.early_stopping:
        monitor = "val_loss" if validation is not None else "loss"
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=config.patience, restore_best_weights=True
            )
        )
    if config.checkpoints and backup_dir is not None:
        # Resumes a crashed fit from its last finished epoch; deleted when the fit completes.
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    history = fitted.fit(
        **fit_args,
        epochs=config.epochs,
        validation_data=validation,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {name: [float(v) for v in values] for name, values in history.history.items()}


def jit_compatible(model: keras.Model) -> bool:
    """XLA cannot compile string ops (the text tokenizer, a table's category and word lookups) nor
    RandAugment's geometric ops."""
    names = {type(layer).__name__ for layer in model._flatten_layers()}
    return not names & {"WordPieceTokenizer", "RandAugment", "StringLookup", "TextVectorization"}


def predict_probabilities(model: keras.Model, x: Any, chunk: int = 4096) -> np.ndarray:
    """(n, classes) float: the model's class probabilities for each row of x (n, features), or of a
    table's {input: (n, 1) column}, `chunk` rows per call."""
    import keras

    # Calling the model directly skips the data pipeline `predict` builds on every call: a sweep scores
    # dev after each epoch, and for small dev sets that pipeline cost more than the training step.
    parts = [
        keras.ops.convert_to_numpy(model(take(x, slice(i, i + chunk)), training=False))
        for i in range(0, n_rows(x), chunk)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, int(model.output_shape[-1])), np.float32)


def predict_classes(model: keras.Model, x: Any, chunk: int = 4096) -> np.ndarray:
    """(n,) int: the most probable class of each row of x (`predict_probabilities`)."""
    return np.argmax(predict_probabilities(model, x, chunk), axis=1)


def load_model(path: str | Path, compile: bool = False) -> keras.Model:
    """A saved model, in Keras' safe mode, with the project's own layers and schedules registered
    first. The project's one loader: load through it rather than `keras.saving.load_model`.
    By default for predicting (no optimizer); `compile=True` restores the optimizer and its state too
    (to continue training, or to read how far it trained)."""
    import keras

    import components.preprocessing  # registers NumericFeatures, DateFeature
    import components.schedules  # noqa: F401 (registers InverseSqrtDecay, which a compiled model may use)

    return keras.saving.load_model(path, compile=compile, safe_mode=True)

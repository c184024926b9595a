"""Transfer learning, as the seeds put it: pre-train on task A, delete the output layer, put a randomly
initialized one for task B, then retrain the last layer only when B's data is small, or every layer
when there is a lot of it. It helps when A has much more data than B and the same input.

`compare_transfer` sets fine-tuning against training from scratch over growing target sizes and says
from which size transfer stops helping.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import keras

    from components.training import TrainConfig

Freeze = Literal["auto", "body", "none"]


def replace_head(source: keras.Model, n_classes: int, seed: int = 0) -> keras.Model:
    """source's body (everything up to its output layer) under a new, randomly initialized softmax."""
    import keras

    from components.models import output_layer

    outputs = output_layer(n_classes, "softmax", seed, "target_softmax")(source.layers[-1].input)
    return keras.Model(source.input, outputs, name=f"{source.name}_transfer")


def copy_of(model: keras.Model) -> keras.Model:
    """An independent copy with the same weights and fitted state, through the .keras format: clone_model
    with set_weights leaves an adapted Normalization at its unfitted mean and variance."""
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "source.keras"
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)


def check_inputs(source: keras.Model, x_target: Any) -> None:
    """The source model must take the target's inputs: same features per example."""
    expected = tuple(source.inputs[0].shape[1:])
    got = tuple(np.asarray(x_target).shape[1:])
    if expected != got:
        raise ValueError(
            f"the transfer source takes inputs of shape {list(expected)} per example, "
            "but the target data has "
            f"{list(got)}: both tasks must have the same input (seeds)"
        )


def fine_tune(
    source: keras.Model,
    config: TrainConfig,
    x_target: Any,
    y_target: np.ndarray,
    n_classes: int,
    freeze: Freeze = "auto",
    small_target: int = 1000,
    validation: tuple[Any, np.ndarray] | None = None,
) -> tuple[keras.Model, bool]:
    """A copy of source with its output layer replaced, trained on the target (x_target, y_target (n,)).

    freeze: body (train the new output layer only), none (every layer), or auto: the body frozen when the
    target has fewer than `small_target` examples. Returns the model and whether the body was frozen.
    """
    from components.training import fit_new

    check_inputs(source, x_target)
    frozen = freeze == "body" or (freeze == "auto" and len(y_target) < small_target)

    def build() -> keras.Model:
        model = replace_head(copy_of(source), n_classes, config.seed)
        if frozen:
            for layer in model.layers[:-1]:
                layer.trainable = False
        return model

    model, _ = fit_new(config, build, x_target, y_target, validation=validation)
    return model, frozen


@dataclass(frozen=True)
class TransferPoint:
    """Dev error at one target size, from scratch and by fine-tuning the source model."""

    target_size: int
    scratch_error: float
    transfer_error: float
    frozen: bool


def compare_transfer(
    source: keras.Model,
    config: TrainConfig,
    target_train: tuple[Any, np.ndarray],
    target_dev: tuple[Any, np.ndarray],
    n_classes: int,
    sizes: list[int],
    freeze: Freeze = "auto",
    small_target: int = 1000,
    min_steps: int = 300,
) -> list[TransferPoint]:
    """At each size, the first `size` target training examples (a fixed random order) trained from scratch
    and fine-tuned from source, both for config.epochs or `min_steps` optimizer steps if that is more;
    both scored on target_dev."""
    from components.training import predict_classes, train, with_min_steps

    x, y = target_train
    order = np.random.default_rng(config.seed).permutation(len(y))
    x_dev, y_dev = target_dev
    points = []
    for size in sizes:
        if not 0 < size <= len(y):
            raise ValueError(f"target size {size} is not in 1..{len(y)} (the target's training examples)")
        x_size, y_size = x[order[:size]], y[order[:size]]
        sized = with_min_steps(config, size, min_steps)
        scratch, _ = train(sized, x_size, y_size, n_classes)
        tuned, frozen = fine_tune(source, sized, x_size, y_size, n_classes, freeze, small_target)
        points.append(
            TransferPoint(
                target_size=size,
                scratch_error=float(np.mean(predict_classes(scratch, x_dev) != y_dev)),
                transfer_error=float(np.mean(predict_classes(tuned, x_dev) != y_dev)),
                frozen=frozen,
            )
        )
    return points


def transfer_stops_helping(points: list[TransferPoint], margin: float = 0.0) -> int | None:
    """The smallest target size from which fine-tuning is no better than scratch (by more than margin) at
    every larger size; None when transfer helps up to the largest size tried."""
    stops = None
    for point in sorted(points, key=lambda p: p.target_size, reverse=True):
        if point.transfer_error + margin < point.scratch_error:
            break
        stops = point.target_size
    return stops

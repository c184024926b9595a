"""Multi-task learning: one network, several binary labels per example, some of them missing.

The cost is the seeds' (1/m) sum_i sum_j L(y_hat_j^(i), y_j^(i)) with the sum over the labels present
only: a missing label (-1, or NaN in a file) adds nothing and sends no gradient. Compared with one
single-task model per label on the same data (`compare_multitask`).

The default demo is on the digits (`digit_attributes`): even, greater than five, has a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from components.config import TrainConfig

MISSING = -1.0
LOOPED_DIGITS = (0, 4, 6, 8, 9)  # digits drawn with a closed loop


def digit_attributes(digits: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(n, 3) float labels {0, 1} of digit classes (n,): even, greater than five, has a loop."""
    digits = np.asarray(digits)
    labels = np.stack([digits % 2 == 0, digits > 5, np.isin(digits, LOOPED_DIGITS)], axis=1)
    return labels.astype(np.float32), ["even", "greater_than_five", "has_loop"]


def hide_labels(labels: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    """A copy of labels (n, tasks) with `share` of its entries marked missing, uniformly at random."""
    if not 0 <= share < 1:
        raise ValueError(f"the share of missing labels must be in [0, 1), got {share}")
    hidden = np.asarray(labels, np.float32).copy()
    hidden[np.random.default_rng(seed).random(hidden.shape) < share] = MISSING
    return hidden


def as_task_labels(labels: Any) -> np.ndarray:
    """(n, tasks) float32 with missing labels (NaN or -1) as -1; anything but 0, 1 and missing refused."""
    labels = np.asarray(labels, np.float32)
    if labels.ndim != 2:
        raise ValueError(f"task labels must have shape (n, tasks), got {labels.shape}")
    labels = np.where(np.isnan(labels), MISSING, labels)
    bad = ~np.isin(labels, (0.0, 1.0, MISSING))
    if bad.any():
        row, task = np.argwhere(bad)[0]
        raise ValueError(
            f"task labels must be 0, 1 or missing (NaN or -1): row {row}, task {task} is {labels[row, task]}"
        )
    return labels


def masked_binary_crossentropy(y_true: Any, y_pred: Any) -> Any:
    """Per example: the sum over its present labels of the binary cross-entropy; y_true (batch, tasks)
    with -1 where a label is missing, y_pred (batch, tasks) probabilities. Keras averages over the batch."""
    import keras

    ops = keras.ops
    y_true = ops.cast(y_true, y_pred.dtype)
    present = ops.cast(ops.not_equal(y_true, MISSING), y_pred.dtype)
    target = ops.where(present > 0, y_true, ops.zeros_like(y_true))  # any value: masked out below
    p = ops.clip(y_pred, keras.config.epsilon(), 1 - keras.config.epsilon())
    losses = -(target * ops.log(p) + (1 - target) * ops.log(1 - p))
    return ops.sum(losses * present, axis=-1)


def build_multitask(config: TrainConfig, x_train: np.ndarray, n_tasks: int) -> keras.Model:
    """The configured family's body and head on x_train's kind, ending in n_tasks sigmoids."""
    import keras

    from components.models import build_model, output_layer

    body = build_model(config, x_train, 2)  # the softmax layer is replaced below
    tasks = output_layer(n_tasks, "sigmoid", config.seed + len(config.hidden_units), "tasks")
    return keras.Model(body.input, tasks(body.get_layer("softmax").input), name=f"{body.name}_multitask")


def train_multitask(
    config: TrainConfig, x_train: np.ndarray, labels: np.ndarray, verbose: int = 0
) -> keras.Model:
    """Fit one network on every task of labels (n, tasks) at once, missing labels skipped."""
    from components.training import fit_new

    labels = as_task_labels(labels)
    build = partial(build_multitask, config, x_train, labels.shape[1])
    model, _ = fit_new(config, build, x_train, labels, loss=masked_binary_crossentropy, verbose=verbose)
    return model


@dataclass(frozen=True)
class TaskComparison:
    """Error per task (on the held-out labels given) of one multi-task network and of one single-task
    network per task."""

    tasks: list[str]
    multitask_error: list[float]
    single_task_error: list[float]
    multitask_parameters: int
    single_task_parameters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": {
                task: {"multitask_error": multi, "single_task_error": single}
                for task, multi, single in zip(
                    self.tasks, self.multitask_error, self.single_task_error, strict=True
                )
            },
            "mean_multitask_error": float(np.mean(self.multitask_error)),
            "mean_single_task_error": float(np.mean(self.single_task_error)),
            "multitask_parameters": self.multitask_parameters,
            "single_task_parameters": self.single_task_parameters,
        }


def task_errors(model: keras.Model, x: np.ndarray, labels: np.ndarray) -> list[float]:
    """Per task: the share of present labels the model gets wrong at threshold 0.5."""
    from components.training import predict_probabilities

    labels = as_task_labels(labels)
    predicted = predict_probabilities(model, x) >= 0.5
    errors = []
    for j in range(labels.shape[1]):
        present = labels[:, j] != MISSING
        errors.append(float(np.mean(predicted[present, j] != labels[present, j])) if present.any() else 0.0)
    return errors


def compare_multitask(
    config: TrainConfig,
    x_train: np.ndarray,
    train_labels: np.ndarray,
    x_test: np.ndarray,
    test_labels: np.ndarray,
    tasks: list[str],
) -> TaskComparison:
    """One multi-task network against one single-task network per task, each single-task network trained
    on the examples whose label it has; same config, errors on the test labels."""
    train_labels = as_task_labels(train_labels)
    multi = train_multitask(config, x_train, train_labels)
    singles, single_errors = [], []
    for j in range(train_labels.shape[1]):
        present = train_labels[:, j] != MISSING
        single = train_multitask(
            replace(config, seed=config.seed + j), x_train[present], train_labels[present, j : j + 1]
        )
        singles.append(single)
        single_errors.append(task_errors(single, x_test, test_labels[:, j : j + 1])[0])
    return TaskComparison(
        tasks=list(tasks),
        multitask_error=task_errors(multi, x_test, test_labels),
        single_task_error=single_errors,
        multitask_parameters=int(multi.count_params()),
        single_task_parameters=int(sum(s.count_params() for s in singles)),
    )

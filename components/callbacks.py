"""The project's own Keras callbacks, top-level and registered once under the "mlstrategy" package: a sweep
trial's dev-metric watch (`DevMetricWatch`) and its restore of a stopped trial's state (`RestoreWeights`).

`get_config` returns each callback's plain constructor arguments. What a callback is given as a callable
(a score, a pruning decision) or as data (the dev set) has no place in a config: whoever rebuilds one from
its config passes those again. This module imports Keras at import time: `components.sweep` imports it
only inside `run_trial`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from components.training import predict_classes


@keras.saving.register_keras_serializable(package="mlstrategy")
class DevMetricWatch(keras.callbacks.Callback):
    """After every epoch: the dev metric `score(y_dev, predicted)` appended to `curve`, written to the
    epoch's logs as `dev_metric` (negated unless `higher_is_better`: Keras's plateau watch maximizes it),
    and `on_epoch(epoch, value)` asked whether to prune; True stops training and sets `pruned`.

    trained: the dev metric of epochs a run before this one trained (a resumed trial's), so epochs are
    numbered on from them. `get_config` holds `higher_is_better` and `trained`; score, on_epoch and the
    dev data are not config (callables and arrays) and are left out."""

    def __init__(
        self,
        score: Callable[[np.ndarray, np.ndarray], float],
        dev_xy: tuple[Any, np.ndarray],
        on_epoch: Callable[[int, float], bool] = lambda epoch, value: False,
        higher_is_better: bool = True,
        trained: Sequence[float] = (),
    ) -> None:
        super().__init__()
        self.score = score
        self.x_dev, self.y_dev = dev_xy
        self.on_epoch = on_epoch
        self.higher_is_better = higher_is_better
        self.trained = tuple(trained)
        self.curve: list[float] = list(trained)
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float(self.score(self.y_dev, predict_classes(self.model, self.x_dev)))
        self.curve.append(value)
        if logs is not None:  # for the plateau watch, which maximizes
            logs["dev_metric"] = value if self.higher_is_better else -value
        if self.on_epoch(len(self.curve), value):
            self.pruned = self.model.stop_training = True

    def get_config(self) -> dict[str, Any]:
        return {"higher_is_better": self.higher_is_better, "trained": [float(v) for v in self.trained]}


@keras.saving.register_keras_serializable(package="mlstrategy")
class RestoreWeights(keras.callbacks.Callback):
    """At the start of training, the model's weights and its optimizer's state (slots, step count) from
    `path`, a `.weights.h5` file its `save_weights` wrote: a stopped trial goes on where it was."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = path

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.model.optimizer.built:  # its slots must exist to take the saved ones
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.path)

    def get_config(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RestoreWeights:
        return cls(**config)

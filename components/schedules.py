"""The project's own learning-rate schedules, as Keras wants them: top-level classes registered once under
the "mlstrategy" package, with a `get_config` that `from_config` turns back into the same schedule.

A model saved with one of these in its compiled optimizer records its registered name
("mlstrategy>InverseSqrtDecay"); importing this module is what lets a load that compiles find it again
(`components.training.load_model(path, compile=True)` does). This module imports Keras at import time:
`components.training` imports it only inside the functions that build a schedule or load a model, so
importing `components.training` stays cheap.
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="mlstrategy")
class InverseSqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr * k / sqrt(t), t = step / decay_steps, floored at t = 1 (the first `decay_steps` keep lr * k).

    Keras has no inverse-square-root decay; this is the course's `lr_decay: inverse_sqrt`."""

    def __init__(self, initial_learning_rate: float, k: float, decay_steps: int) -> None:
        self.initial_learning_rate = initial_learning_rate
        self.k = k
        self.decay_steps = decay_steps

    def __call__(self, step: Any) -> Any:
        t = keras.ops.maximum(keras.ops.cast(step, "float32") / self.decay_steps, 1.0)
        return self.initial_learning_rate * self.k / keras.ops.sqrt(t)

    def get_config(self) -> dict[str, Any]:
        # The keys models saved before this class moved here hold: they must keep loading.
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "k": self.k,
            "decay_steps": self.decay_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InverseSqrtDecay:
        return cls(**config)

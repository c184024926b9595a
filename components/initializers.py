"""Weight initializers, as the course matches them to the activation, each with its own seed. Below
`components.models` and `components.preprocessing`, which both build layers with them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.config import TrainConfig

if TYPE_CHECKING:
    import keras


RELU_LIKE = {"relu", "elu", "selu", "gelu", "leaky_relu", "silu", "swish"}


def initializer_for(config: TrainConfig) -> str:
    """He initialization for ReLU-like activations, Glorot (Xavier) for tanh/sigmoid, unless set."""
    if config.initializer != "auto":
        return config.initializer
    return "he_normal" if config.activation in RELU_LIKE else "glorot_uniform"


def seeded_initializer(name: str, seed: int) -> keras.initializers.Initializer:
    """The named initializer with its own seed: an unseeded one draws from Python's global `random`,
    which other threads of the process (Prefect's among them) may also draw from."""
    import keras

    initializer = keras.initializers.get(name)
    initializer_config = initializer.get_config()
    if "seed" not in initializer_config:
        return initializer
    return type(initializer).from_config({**initializer_config, "seed": seed})

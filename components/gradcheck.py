"""Gradient checking, as the seeds do it: every parameter of the network in one vector theta, the two-sided
estimate (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps) per component, compared with backprop's
gradient by ||approx - grad|| / (||approx|| + ||grad||).

For debugging only (two forward passes per parameter): run it on a tiny network, in float64, with
dropout off (J is not defined with dropout) and the regularization terms in J, as the seeds insist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

    from components.config import TrainConfig

EPSILON = 1e-7
FINE, SUSPECT = 1e-5, 1e-3  # the seeds: about 1e-7 is great; above 1e-3, look for a bug


@dataclass(frozen=True)
class GradCheck:
    """The relative difference over all parameters, and the variable where backprop disagrees most."""

    name: str
    relative_difference: float
    parameters: int
    worst_variable: str
    worst_difference: float

    @property
    def verdict(self) -> str:
        if self.relative_difference < FINE:
            return "fine: backprop matches the numerical gradient"
        if self.relative_difference < SUSPECT:
            return "suspect: check the components with the largest difference"
        return "bug: backprop disagrees with the numerical gradient"

    @property
    def passed(self) -> bool:
        return self.relative_difference < SUSPECT


def relative_difference(approx: np.ndarray, grad: np.ndarray) -> float:
    """||approx - grad||_2 / (||approx||_2 + ||grad||_2); 0 when both are zero."""
    denominator = np.linalg.norm(approx) + np.linalg.norm(grad)
    return float(np.linalg.norm(approx - grad) / denominator) if denominator else 0.0


def numerical_gradient(
    cost: Callable[[np.ndarray], float], theta: np.ndarray, epsilon: float = EPSILON
) -> np.ndarray:
    """The two-sided estimate of dJ/dtheta, component by component; theta (p,) float64."""
    approx = np.empty_like(theta)
    for i in range(theta.size):
        plus, minus = theta.copy(), theta.copy()
        plus[i] += epsilon
        minus[i] -= epsilon
        approx[i] = (cost(plus) - cost(minus)) / (2 * epsilon)
    return approx


def check_model(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    loss: Callable[[Any, Any], Any],
    name: str = "model",
    epsilon: float = EPSILON,
) -> GradCheck:
    """Check backprop through model (built in float64, no dropout) on the cost
    J(theta) = mean over examples of loss(y, model(x)) + the model's regularization losses."""
    import keras

    variables = model.trainable_variables
    if any(v.dtype != "float64" for v in variables):
        raise ValueError(
            "gradient checking needs a float64 model: build it under keras.config.set_floatx('float64')"
        )
    if any(isinstance(layer, keras.layers.Dropout) and layer.rate for layer in model._flatten_layers()):
        raise ValueError("gradient checking needs dropout off: J is not defined with dropout (seeds)")
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(s)) for s in shapes]
    non_trainable = [v.value for v in model.non_trainable_variables]
    x = keras.ops.convert_to_tensor(np.asarray(x, np.float64))
    y = keras.ops.convert_to_tensor(np.asarray(y, np.float64))

    def cost_of(theta: Any) -> Any:
        parts, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(keras.ops.reshape(theta[start : start + size], shape))
            start += size
        outputs, _, losses = model.stateless_call(parts, non_trainable, x, training=False, return_losses=True)
        return keras.ops.mean(loss(y, outputs)) + sum(losses, keras.ops.convert_to_tensor(0.0, "float64"))

    theta = np.concatenate([keras.ops.convert_to_numpy(v.value).ravel() for v in variables]).astype(
        np.float64
    )
    grad = _backprop(cost_of, theta)
    approx = numerical_gradient(
        lambda t: float(keras.ops.convert_to_numpy(cost_of(keras.ops.convert_to_tensor(t)))), theta, epsilon
    )
    differences, start = [], 0
    for variable, size in zip(variables, sizes, strict=True):
        differences.append(
            (relative_difference(approx[start : start + size], grad[start : start + size]), variable.path)
        )
        start += size
    worst_difference, worst_variable = max(differences)
    return GradCheck(name, relative_difference(approx, grad), theta.size, worst_variable, worst_difference)


def _backprop(cost_of: Callable[[Any], Any], theta: np.ndarray) -> np.ndarray:
    """dJ/dtheta by the backend's automatic differentiation (TensorFlow or JAX)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        theta_tensor = tf.constant(theta)
        with tf.GradientTape() as tape:
            tape.watch(theta_tensor)
            cost = cost_of(theta_tensor)
        return tape.gradient(cost, theta_tensor).numpy()
    if backend == "jax":
        import jax

        if not jax.config.jax_enable_x64:  # float64 would silently be float32: epsilon 1e-7 lost
            raise ValueError("gradient checking on JAX needs float64: set JAX_ENABLE_X64=1")
        return np.asarray(jax.grad(cost_of)(jax.numpy.asarray(theta)))
    raise ValueError(f"gradient checking supports the tensorflow and jax backends, not {backend}")


def project_checks(config: TrainConfig, seed: int = 0) -> list[GradCheck]:
    """The checks `mlstrategy gradcheck` runs, each on a tiny float64 network with dropout off and the
    config's activation, initializer, batch norm and L2: the softmax classifier's cost (the MLP head and
    the CNN body) and the masked multi-task loss with 30% of its labels missing."""
    import keras

    from components.config import AugmentConfig
    from components.models import build_model
    from components.multitask import build_multitask, hide_labels, masked_binary_crossentropy

    rng = np.random.default_rng(seed)
    tiny = replace(
        config,
        family="auto",
        augment=AugmentConfig(),
        hidden_units=(5,),
        dropout=0.0,
        seed=seed,
        mixed_precision="off",
        image_shape=None,
    )
    x = rng.normal(size=(8, 4))
    y = rng.integers(0, 3, size=8)
    images = rng.random(size=(6, 16))
    tasks = hide_labels(rng.integers(0, 2, size=(8, 3)).astype(np.float32), 0.3, seed)
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(seed)
    try:
        softmax = build_model(tiny, x.astype(np.float32), 3)
        cnn = build_model(
            replace(tiny, family="cnn", cnn=replace(tiny.cnn, filters=(2,)), image_shape=(4, 4)),
            images.astype(np.float32),
            3,
        )
        masked = build_multitask(tiny, x.astype(np.float32), 3)
        cross_entropy = keras.losses.sparse_categorical_crossentropy
        return [
            check_model(softmax, x, y, cross_entropy, "softmax cross-entropy + L2 (MLP)"),
            check_model(cnn, images, y[:6], cross_entropy, "softmax cross-entropy + L2 (CNN)"),
            check_model(masked, x, tasks, masked_binary_crossentropy, "masked multi-task loss"),
        ]
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])

"""Planted-problem scenarios: small synthetic tasks whose principal problem and Bayes error are known, to
check that the diagnosis names the planted gap and that the recipe loop cuts it.

Labels come from a fixed function of latent inputs, then a share `bayes_error` of them is flipped to the
other class, so no model can do better than `bayes_error` (the human-level stand-in). Each scenario plants
one problem:

- avoidable_bias: a checkerboard that a 2-unit network cannot draw (a model too small for the function);
- variance: 200 training examples in 20 dimensions (a half-space on 2 of them) for a big unregularized
  network;
- data_mismatch: dev and test are observed through a different sensor (scaled and shifted inputs, as
  phone pictures are degraded scans), train and train_dev are not;
- dev_overfit: a 20-example dev set on which 20,000 sub-networks of one model are compared, the best kept.
  Most inputs are ambiguous (the label is a coin flip there, Bayes error 40%), so the sub-networks are about
  equally good and differ where the labels are noise: the dev set picks the luckiest, and test shows it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from components.config import TrainConfig
from components.diagnosis import Errors, Sizes
from components.train_dev import SPLITS

SCENARIOS = ("avoidable_bias", "variance", "data_mismatch", "dev_overfit")


@dataclass(frozen=True)
class Scenario:
    """splits: {train, train_dev, dev, test: (x (n, d) float32, y (n,) int64)}; config: the model that plants
    the problem; candidates: how many variants are compared on dev (dev_overfit), 0 for none."""

    kind: str
    bayes_error: float
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    config: TrainConfig
    candidates: int = 0
    n_classes: int = 2


def _checkerboard(z: np.ndarray) -> np.ndarray:
    return ((np.floor(z[:, 0] * 1.5) + np.floor(z[:, 1] * 1.5)) % 2).astype(np.int64)


def _half_space(z: np.ndarray) -> np.ndarray:
    return (z[:, 0] + z[:, 1] > 0).astype(np.int64)


def _quadrants(z: np.ndarray) -> np.ndarray:
    return (z[:, 0] * z[:, 1] > 0).astype(np.int64)


def _sample(rng: np.random.Generator, n: int, d: int, label, bayes_error: float, ambiguous: bool = False):
    """n examples in d dimensions whose best possible error is `bayes_error`: a share of labels flipped
    uniformly, or with `ambiguous`, coin flips on the inputs with z0 below a threshold (a share
    2 * bayes_error of them) and exact labels elsewhere."""
    z = rng.normal(size=(n, d)).astype(np.float32)
    y = label(z)
    if ambiguous:
        flip = (z[:, 0] < NormalDist().inv_cdf(2 * bayes_error)) & (rng.random(n) < 0.5)
    else:
        flip = rng.random(n) < bayes_error
    return z, np.where(flip, 1 - y, y)


def make_scenario(kind: str, seed: int = 0, epochs: int | None = None) -> Scenario:
    """The scenario `kind` (one of SCENARIOS) drawn with `seed`; `epochs` overrides its training length."""
    if kind not in SCENARIOS:
        raise ValueError(f"unknown scenario {kind!r}; choose one of {list(SCENARIOS)}")
    rng = np.random.default_rng(seed)
    bayes = 0.05
    base = dict(seed=seed, l2=0.0, batch_size=64, learning_rate=0.01)
    if kind == "avoidable_bias":
        sizes, d, label = {"train": 3000, "train_dev": 1000, "dev": 1000, "test": 1000}, 2, _checkerboard
        config = TrainConfig(hidden_units=(2,), epochs=30, **base)
    elif kind == "variance":
        sizes, d, label = {"train": 200, "train_dev": 1000, "dev": 1000, "test": 1000}, 20, _half_space
        config = TrainConfig(hidden_units=(256, 256), epochs=150, **base)
    elif kind == "data_mismatch":
        sizes, d, label = {"train": 3000, "train_dev": 1000, "dev": 1000, "test": 1000}, 2, _quadrants
        config = TrainConfig(hidden_units=(32, 32), epochs=30, **base)
    else:
        bayes = 0.4
        sizes, d, label = {"train": 2000, "train_dev": 1000, "dev": 20, "test": 4000}, 2, _quadrants
        config = TrainConfig(hidden_units=(256,), epochs=40, **base)
    ambiguous = kind == "dev_overfit"
    splits = {name: _sample(rng, n, d, label, bayes, ambiguous) for name, n in sizes.items()}
    if kind == "data_mismatch":  # the target sensor: lower gain and an offset on every input
        splits = {
            name: (x * 0.5 + 0.7 if name in ("dev", "test") else x, y) for name, (x, y) in splits.items()
        }
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    return Scenario(
        kind=kind,
        bayes_error=bayes,
        splits=splits,
        config=config,
        candidates=20_000 if kind == "dev_overfit" else 0,
    )


class _Pruned:
    """A one-hidden-layer network whose hidden units can be removed at prediction time (the rest scaled up
    to make up for them, as dropout does); the activations are computed once per input."""

    def __init__(self, model) -> None:
        self.normalize, hidden, output = (layer for layer in model.layers if layer.weights)
        self.hidden_weights, (self.out_w, self.out_b) = hidden.get_weights(), output.get_weights()

    def hidden(self, x: np.ndarray) -> np.ndarray:
        w, b = self.hidden_weights
        return np.maximum(np.asarray(self.normalize(x)) @ w + b, 0)

    def classes(self, h: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Classes (k, n) from activations h (n, units) under each of `masks` (k, units), keeping the
        units where a mask is true, scaled up as dropout does."""
        scaled = masks / masks.mean(axis=1, keepdims=True)
        return ((h[None] * scaled[:, None, :]) @ self.out_w + self.out_b).argmax(axis=-1)

    def predict(self, h: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Classes (n,) from activations h (n, units) with the units where `keep` (units,) is true."""
        return self.classes(h, keep[None])[0]

    def best(self, masks: np.ndarray, h: np.ndarray, y: np.ndarray, chunk: int = 1000) -> np.ndarray:
        """The mask among `masks` (k, units) with the fewest errors on (h, y), the first on ties."""
        errors = [
            (self.classes(h, part) != y[None]).sum(axis=1)
            for part in np.array_split(masks, max(1, len(masks) // chunk))
        ]
        return masks[int(np.argmin(np.concatenate(errors)))]


def run_scenario(
    scenario: Scenario, config: TrainConfig | None = None, measure: tuple[str, ...] = SPLITS
) -> tuple[Errors, Sizes]:
    """Train `config` (default: the scenario's) on train and measure the splits in `measure`. For
    dev_overfit, the variant with the lowest dev error among `candidates` pruned copies is measured."""
    from components.evaluation import error_rate
    from components.training import predict_classes, train

    config = config or scenario.config
    x_train, y_train = scenario.splits["train"]
    model, _ = train(config, x_train, y_train, scenario.n_classes)
    if scenario.candidates and len(config.hidden_units) == 1:
        pruned = _Pruned(model)
        # A fifth of the units each: sub-networks different enough to disagree where the labels are noise.
        shape = (scenario.candidates, config.hidden_units[0])
        masks = (np.random.default_rng(config.seed).random(shape) < 0.2).astype(np.float32)
        x_dev, y_dev = scenario.splits["dev"]
        best = pruned.best(masks, pruned.hidden(x_dev), y_dev)

        def predict(inputs: np.ndarray) -> np.ndarray:
            return pruned.predict(pruned.hidden(inputs), best)
    else:

        def predict(inputs: np.ndarray) -> np.ndarray:
            return predict_classes(model, inputs)

    errors = {name: error_rate(y, predict(x)) for name, (x, y) in scenario.splits.items() if name in measure}
    sizes = {name: len(y) for name, (_, y) in scenario.splits.items()}
    return Errors(**errors), Sizes(**sizes)


def scenario_outcome(scenario: Scenario, config: TrainConfig | None = None):
    """`run_scenario` as the recipe loop sees it: errors without test, accuracy on dev as the metric."""
    from components.recipe import Outcome

    errors, _ = run_scenario(scenario, config, measure=("train", "train_dev", "dev"))
    return Outcome(errors=errors, dev_metric=1 - errors.dev)

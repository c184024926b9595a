"""The search space of hyperparameter tuning, as the course draws it: random values, never a grid; the
learning rate on a log scale; momentum and Adam's betas as 1 - beta on a log scale; the most important
hyperparameters first; a box that zooms in on the best region between rounds. One definition per knob,
read by the sweep and by the recipe loop's own draws (`components.recipe`). Imports no Keras.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from components.config import TrainConfig

if TYPE_CHECKING:
    import optuna

Scale = Literal["linear", "log", "beta", "int", "int_log", "choice"]

# The seeds' order of importance: a focused sweep opens the first tiers only. Adam's beta_2 and epsilon
# "usually don't need to be tuned": they come last, with the knobs the seeds do not rank.
IMPORTANCE: tuple[tuple[str, ...], ...] = (
    ("learning_rate",),
    ("momentum", "beta_1", "units", "batch_size"),
    ("layers", "lr_decay", "decay_rate"),
)
# TrainConfig fields a sweep may set, plus `units` (per hidden layer) and `layers` (how many).
SEARCHABLE = {
    "learning_rate",
    "momentum",
    "beta_1",
    "beta_2",
    "epsilon",
    "rho",
    "units",
    "layers",
    "batch_size",
    "lr_decay",
    "decay_rate",
    "l2",
    "dropout",
    "optimizer",
    "activation",
    "batch_norm",
    "initializer",
}
BETAS = {"momentum", "beta_1", "beta_2", "rho"}


def tier(name: str) -> int:
    """1 for the learning rate, 2 for momentum/beta, units and mini-batch size, 3 for layers and decay,
    4 for the rest."""
    return next((i for i, names in enumerate(IMPORTANCE, 1) if name in names), len(IMPORTANCE) + 1)


@dataclass(frozen=True)
class Hyperparameter:
    """One searchable knob. Scales: `linear` (uniform), `log` (uniform exponent: equal mass per decade),
    `beta` (1 - value log-uniform: beta in [0.9, 0.999] has equal mass in [0.9, 0.99] and [0.99, 0.999]),
    `int`, `int_log`, `choice` (from `choices`)."""

    name: str
    low: float | None = None
    high: float | None = None
    scale: Scale = "linear"
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        where = f"sweep.space.{self.name}"
        if self.name not in SEARCHABLE:
            raise ValueError(f"{where}: unknown hyperparameter; searchable: {sorted(SEARCHABLE)}")
        if self.scale == "choice" or self.choices:
            if (self.scale != "choice" and self.scale != "linear") or not self.choices:
                raise ValueError(f"{where}: give either choices or low/high with a scale")
            if self.low is not None or self.high is not None:
                raise ValueError(f"{where}: give either choices or low/high, not both")
            object.__setattr__(self, "scale", "choice")
            return
        if self.low is None or self.high is None:
            raise ValueError(f"{where}: needs low and high (or choices)")
        if not self.low < self.high:
            raise ValueError(f"{where}: empty range: low = {self.low} must be below high = {self.high}")
        if self.scale in ("log", "int_log") and self.low <= 0:
            raise ValueError(f"{where}: a log scale needs bounds > 0, got low = {self.low}")
        if self.scale == "beta" and not 0 < self.low < self.high < 1:
            raise ValueError(f"{where}: beta bounds must lie in (0, 1), got [{self.low}, {self.high}]")
        if self.name in BETAS and not 0 <= self.low < self.high < 1:
            raise ValueError(f"{where}: {self.name} must lie in [0, 1), got [{self.low}, {self.high}]")
        if self.scale in ("int", "int_log") and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"{where}: integer scale needs integer bounds, got [{self.low}, {self.high}]")

    @property
    def key(self) -> str:
        """The name Optuna samples: 1 - beta is sampled, not beta; a choice is named with its choices,
        because one study keeps one categorical space per name and a finer box keeps fewer of them."""
        if self.scale == "choice":
            return f"{self.name} in {list(self.choices)}"
        return f"one_minus_{self.name}" if self.scale == "beta" else self.name

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.scale == "choice":
            return CategoricalDistribution(list(self.choices))
        if self.scale == "beta":
            return FloatDistribution(1 - self.high, 1 - self.low, log=True)
        if self.scale in ("int", "int_log"):
            return IntDistribution(int(self.low), int(self.high), log=self.scale == "int_log")
        return FloatDistribution(self.low, self.high, log=self.scale == "log")

    def value(self, sampled: Any) -> Any:
        """The config value of what Optuna sampled under `key`."""
        return 1 - sampled if self.scale == "beta" else sampled

    def sampled(self, value: Any) -> Any:
        """What Optuna samples under `key` for the config value `value` (the inverse of `value`), or
        None when `value` is None or lies outside this knob's range."""
        if self.scale == "choice":
            return value if value in self.choices else None
        return self.value(value) if value is not None and self.low <= value <= self.high else None

    def at(self, quantile: float) -> Any:
        """The config value at `quantile` (in [0, 1)) of this knob's sampling axis: where a uniform draw
        of `quantile` lands, as Optuna samples the knob (the recipe loop's stratified draws)."""
        if self.scale == "choice":
            return self.choices[min(int(quantile * len(self.choices)), len(self.choices) - 1)]
        to, back = _transform(self.scale)
        value = back(to(self.low) + quantile * (to(self.high) - to(self.low)))
        return int(min(round(value), self.high)) if self.scale in ("int", "int_log") else float(value)

    def zoom(self, values: Sequence[Any], margin: float = 0.25) -> Hyperparameter:
        """The box around `values` (config values of the best trials): their span on this scale widened by
        `margin` of it on each side, inside the current range; of choices, those the best trials took
        (a mini-batch of 128 that lost the coarse round costs a finer round a third of its trials)."""
        if self.scale == "choice":
            return dataclasses.replace(self, choices=tuple(c for c in self.choices if c in values))
        to, back = _transform(self.scale)
        low, high = sorted((to(self.low), to(self.high)))  # 1 - beta runs the other way
        lo, hi = min(to(v) for v in values), max(to(v) for v in values)
        pad = margin * max(hi - lo, (high - low) * 0.05)
        new_low, new_high = sorted((back(max(low, lo - pad)), back(min(high, hi + pad))))
        if self.scale in ("int", "int_log"):
            new_low, new_high = math.floor(new_low), math.ceil(new_high)
            if new_low == new_high:  # an integer range needs two values to stay a range
                new_high = min(int(self.high), new_high + 1)
                new_low = new_high - 1
        return dataclasses.replace(self, low=new_low, high=new_high)

    def to_dict(self) -> dict[str, Any]:
        if self.scale == "choice":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "scale": self.scale}


def _transform(scale: Scale) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """The sampling axis of a scale and back: where uniform sampling happens."""
    if scale in ("log", "int_log"):
        return math.log10, lambda r: 10**r
    if scale == "beta":
        return lambda v: math.log10(1 - v), lambda r: 1 - 10**r
    return float, float


@dataclass(frozen=True)
class SearchSpace:
    """The box of one round: {name: Hyperparameter}, in the seeds' order of importance."""

    parameters: tuple[Hyperparameter, ...]

    @classmethod
    def from_params(cls, space: Mapping[str, Mapping[str, Any]], focus: int | None = None) -> SearchSpace:
        """From params.yaml's `sweep.space` ({name: {low, high, scale} or {choices}}); `focus` keeps the
        hyperparameters of the first `focus` tiers of importance only."""
        if not space:
            raise ValueError(
                "sweep.space is empty: give at least the learning rate, e.g. "
                "learning_rate: {low: 1.0e-4, high: 0.1, scale: log}"
            )
        parameters = []
        for name, spec in space.items():
            if not isinstance(spec, Mapping):
                raise ValueError(
                    f"sweep.space.{name}: expected {{low, high, scale}} or {{choices}}, got {spec!r}"
                )
            unknown = set(spec) - {"low", "high", "scale", "choices"}
            if unknown:
                raise ValueError(f"sweep.space.{name}: unknown key(s) {sorted(unknown)}")
            parameters.append(
                Hyperparameter(
                    name,
                    spec.get("low"),
                    spec.get("high"),
                    spec.get("scale", "linear"),
                    tuple(spec.get("choices", ())),
                )
            )
        parameters.sort(key=lambda p: tier(p.name))
        if focus is not None:
            parameters = [p for p in parameters if tier(p.name) <= focus]
            if not parameters:
                raise ValueError(f"sweep.focus = {focus} leaves no hyperparameter of the space to search")
        return cls(tuple(parameters))

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {p.key: p.distribution() for p in self.parameters}

    def values(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """{name: config value} from Optuna's sampled {key: value}."""
        return {p.name: p.value(sampled[p.key]) for p in self.parameters}

    def zoom(self, best: Sequence[Mapping[str, Any]], margin: float = 0.25) -> SearchSpace:
        """The next round's box around the best trials' values ({name: value} each)."""
        return SearchSpace(tuple(p.zoom([v[p.name] for v in best], margin) for p in self.parameters))

    def to_dict(self) -> dict[str, Any]:
        return {p.name: p.to_dict() for p in self.parameters}


# The default search space (params.yaml's `sweep.space` unless set there), also what the recipe loop's
# "search the hyperparameters" knob samples from.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"low": 1e-4, "high": 0.1, "scale": "log"},
    "beta_1": {"low": 0.8, "high": 0.999, "scale": "beta"},
    "units": {"low": 16, "high": 256, "scale": "int_log"},
    "batch_size": {"choices": [32, 64, 128]},
    "layers": {"low": 1, "high": 3, "scale": "int"},
}


def sample(space: SearchSpace, n: int, seed: int) -> list[dict[str, Any]]:
    """n random points of `space` ({name: config value} each), drawn by Optuna's RandomSampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.values(study.ask(space.distributions()).params) for _ in range(n)]


def configure(base: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """`base` with a trial's values; `units` and `layers` set the hidden layers (every layer `units` wide)."""
    changes = {k: v for k, v in values.items() if k not in ("units", "layers")}
    layers = int(values.get("layers", len(base.hidden_units)))
    if "units" in values:
        changes["hidden_units"] = (int(values["units"]),) * layers
    elif "layers" in values:
        changes["hidden_units"] = (base.hidden_units + (base.hidden_units[-1],) * layers)[:layers]
    for name in ("batch_size", "epochs"):
        if name in changes:
            changes[name] = int(changes[name])
    return dataclasses.replace(base, **changes)


# Successive halving keeps the best third of the trials at each rung.
REDUCTION_FACTOR = 3


def first_rung(epochs: int) -> int:
    """Epochs of successive halving's first rung for trials of `epochs` epochs: a ninth (rungs at a ninth
    and a third, reduction factor 3), where a coarse round's screening trials stop too."""
    return max(1, math.ceil(epochs / REDUCTION_FACTOR**2))

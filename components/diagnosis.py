"""Comparing to human-level performance: the four gaps, the principal problem, and orthogonalization.

Human-level error stands in for Bayes error. From the errors on train, train_dev, dev and test:

    avoidable bias = train - human          (fit the training set)
    variance       = train_dev - train      (generalize to unseen data of the training distribution)
    data mismatch  = dev - train_dev        (generalize to the target distribution)
    dev overfit    = test - dev             (the dev set has been tuned to)

Without a train_dev error, variance = dev - train and data mismatch is unknown (None); without a test
error, dev overfit is None. A gap is a problem when it exceeds the tolerance and, given the split sizes,
its own statistical uncertainty (so a 0.5% gap on 300 dev examples is not called a problem); the largest
problem is the principal one, and each gap has its own knobs, so one can be turned without moving the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

GAPS = ("avoidable_bias", "variance", "data_mismatch", "dev_overfit")

# Orthogonalization: each gap with its own knobs, in the order the course gives them.
KNOBS: dict[str, tuple[str, ...]] = {
    "avoidable_bias": (
        "train a bigger model",
        "train longer",
        "use a better optimization algorithm (momentum, RMSprop, Adam)",
        "search the architecture or the hyperparameters",
    ),
    "variance": (
        "get more training data",
        "add regularization (L2, dropout, data augmentation)",
        "search the architecture or the hyperparameters",
    ),
    "data_mismatch": (
        "do error analysis to understand how train differs from dev/test",
        "collect more training data like the dev/test data",
        "synthesize training data like the dev/test data (artificial data synthesis)",
    ),
    "dev_overfit": ("get a bigger dev set",),
    "none": (
        "if doing well on dev/test does not mean doing well in the real world, "
        "change the dev set or the metric",
    ),
}

# Early stopping moves two gaps at once (it stops fitting train to help dev): not an orthogonal knob.
NON_ORTHOGONAL_KNOBS = {"early_stopping": ("avoidable_bias", "variance")}


def check_fraction(name: str, value: float | None) -> None:
    """Errors are fractions in [0, 1]; a value above 1 is almost surely a percent typed by mistake."""
    if value is None:
        return
    if value > 1:
        raise ValueError(f"{name} = {value} is above 1: errors are fractions (write 0.05 for 5%)")
    if value < 0:
        raise ValueError(f"{name} = {value} is negative: errors are fractions in [0, 1]")


@dataclass(frozen=True)
class Errors:
    """Error rates (fractions in [0, 1]) on each split; train_dev and test are optional."""

    train: float
    dev: float
    train_dev: float | None = None
    test: float | None = None

    def __post_init__(self) -> None:
        for name in ("train", "train_dev", "dev", "test"):
            check_fraction(f"{name} error", getattr(self, name))

    def to_dict(self) -> dict[str, float | None]:
        return {"train": self.train, "train_dev": self.train_dev, "dev": self.dev, "test": self.test}


@dataclass(frozen=True)
class Sizes:
    """Examples behind each error (the split sizes); train_dev and test are optional."""

    train: int
    dev: int
    train_dev: int | None = None
    test: int | None = None

    def __post_init__(self) -> None:
        for name in ("train", "train_dev", "dev", "test"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} size = {value} must be a count of examples")


def _variance_of(error: float | None, n: int | None) -> float:
    """Sampling variance of an error rate measured on n examples (0 for a known, exact figure). An error of
    exactly 0 or 1 is taken half an example inward, since it does not mean the variance is zero."""
    if error is None or not n:
        return 0.0
    error = min(max(error, 0.5 / n), 1 - 0.5 / n)
    return error * (1 - error) / n


def gap_uncertainty(errors: Errors, sizes: Sizes, alpha: float = 0.05) -> dict[str, float | None]:
    """Half-width of the (1 - alpha) interval of each gap: z * sqrt(e1(1-e1)/n1 + e2(1-e2)/n2), the two
    errors measured on disjoint splits (human-level error is taken as exact)."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    unseen, n_unseen = (
        (errors.train_dev, sizes.train_dev) if errors.train_dev is not None else (errors.dev, sizes.dev)
    )

    def half_width(*terms: tuple[float | None, int | None]) -> float:
        return z * math.sqrt(sum(_variance_of(e, n) for e, n in terms))

    return {
        "avoidable_bias": half_width((errors.train, sizes.train)),
        "variance": half_width((errors.train, sizes.train), (unseen, n_unseen)),
        "data_mismatch": None
        if errors.train_dev is None
        else half_width((errors.train_dev, sizes.train_dev), (errors.dev, sizes.dev)),
        "dev_overfit": None
        if errors.test is None
        else half_width((errors.dev, sizes.dev), (errors.test, sizes.test)),
    }


# What a gap below zero (beyond its uncertainty) means.
NEGATIVE_GAPS = {
    "avoidable_bias": "training error is below human-level error: human-level performance is surpassed (or "
    "the human-level figure is too high); avoidable bias can no longer be read off, and progress will slow",
    "variance": "error on unseen training-distribution data is below training error: the held-out examples "
    "are easier than train, or training error is inflated (dropout, augmentation at training time)",
    "data_mismatch": "dev error is below train_dev error: the dev/test distribution is easier than the "
    "training distribution",
    "dev_overfit": "test error is below dev error: the test set is easier than dev, or dev and test do not "
    "come from one distribution",
}


def avoidable_bias(train_error: float, human_level_error: float) -> float:
    """How far training error is above the Bayes proxy."""
    return train_error - human_level_error


def variance(train_error: float, unseen_error: float) -> float:
    """Error on unseen data of the training distribution (train_dev, else dev) minus training error."""
    return unseen_error - train_error


def data_mismatch(train_dev_error: float, dev_error: float) -> float:
    """Dev error minus train_dev error: what moving to the target distribution costs."""
    return dev_error - train_dev_error


def dev_overfit(dev_error: float, test_error: float) -> float:
    """Test error minus dev error: how much the dev set has been overfit by tuning on it."""
    return test_error - dev_error


@dataclass(frozen=True)
class Diagnosis:
    """The gaps, the problems (gaps above tolerance, largest first), the principal one and its knobs."""

    human_level_error: float
    errors: Errors
    gaps: dict[str, float | None]
    problems: list[str]
    principal: str
    knobs: list[str] = field(default_factory=list)
    uncertainty: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "human_level_error": self.human_level_error,
            "errors": self.errors.to_dict(),
            "gaps": dict(self.gaps),
            "uncertainty": dict(self.uncertainty),
            "problems": list(self.problems),
            "principal": self.principal,
            "knobs": list(self.knobs),
            "notes": dict(self.notes),
        }


def diagnose(
    errors: Errors,
    human_level_error: float,
    tolerance: float = 0.02,
    sizes: Sizes | None = None,
    alpha: float = 0.05,
) -> Diagnosis:
    """Read the four gaps off the errors and name the problems, the principal one and its knobs.

    sizes: the examples behind each error; without them a gap's uncertainty is not known (None) and only
    the tolerance decides."""
    check_fraction("human-level error", human_level_error)
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance = {tolerance} must be a fraction in [0, 1)")
    unseen = errors.train_dev if errors.train_dev is not None else errors.dev
    gaps: dict[str, float | None] = {
        "avoidable_bias": avoidable_bias(errors.train, human_level_error),
        "variance": variance(errors.train, unseen),
        "data_mismatch": None if errors.train_dev is None else data_mismatch(errors.train_dev, errors.dev),
        "dev_overfit": None if errors.test is None else dev_overfit(errors.dev, errors.test),
    }
    uncertainty = gap_uncertainty(errors, sizes, alpha) if sizes else dict.fromkeys(GAPS)
    beyond = {name: max(tolerance, uncertainty[name] or 0.0) for name, gap in gaps.items() if gap is not None}
    problems = sorted((name for name in beyond if gaps[name] > beyond[name]), key=lambda name: -gaps[name])
    # A gap below zero is explained once it is beyond noise (the tolerance when the noise is unknown).
    noise = {name: tolerance if uncertainty[name] is None else uncertainty[name] for name in beyond}
    notes = {name: NEGATIVE_GAPS[name] for name in beyond if gaps[name] < -noise[name]}
    principal = problems[0] if problems else "none"
    return Diagnosis(
        human_level_error=human_level_error,
        errors=errors,
        gaps=gaps,
        problems=problems,
        principal=principal,
        knobs=list(KNOBS[principal]),
        uncertainty=uncertainty,
        notes=notes,
    )

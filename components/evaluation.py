"""Single number evaluation metric, optimizing vs satisficing metrics, and selection.

Every metric is a function of the confusion matrix (and, for the weighted error, of the per-example weights
summed per cell), so one bootstrap of the matrix gives every metric's confidence interval at any data size.
One metric is optimized; every other measure is satisficing: it only has to meet its bound ("maximize
accuracy subject to running time <= 100 ms"). Latency is measured for real on the prediction path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class labels, got shape {y.shape}")
    return y


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(n_classes, n_classes): rows are true classes, columns predicted classes; counts, or the sum of
    `weights` (n,) per cell when given."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    cells = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(cells, weights=weights, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return np.divide(
        numerator,
        denominator,
        out=np.zeros(np.broadcast(numerator, denominator).shape),
        where=denominator > 0,
    )


def _macro(per_class: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Mean over the classes present in y_true or y_pred, as scikit-learn's average="macro"."""
    present = (matrix.sum(axis=-1) + matrix.sum(axis=-2)) > 0
    return _ratio((per_class * present).sum(axis=-1), present.sum(axis=-1))


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diagonal(matrix, axis1=-2, axis2=-1)
    return tp, matrix.sum(axis=-2), matrix.sum(axis=-1)  # true positives, predicted, actual


def _accuracy(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _ratio(np.trace(m, axis1=-2, axis2=-1), m.sum(axis=(-2, -1)))


def _weighted_error(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    return 1 - _ratio(np.trace(w, axis1=-2, axis2=-1), w.sum(axis=(-2, -1)))


def _precision(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, predicted, _ = _per_class(m)
    return _ratio(tp[..., 1], predicted[..., 1])


def _recall(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, _, actual = _per_class(m)
    return _ratio(tp[..., 1], actual[..., 1])


def _f1(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, predicted, actual = _per_class(m)
    return _ratio(2 * tp[..., 1], predicted[..., 1] + actual[..., 1])


def _macro_precision(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, predicted, _ = _per_class(m)
    return _macro(_ratio(tp, predicted), m)


def _macro_recall(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, _, actual = _per_class(m)
    return _macro(_ratio(tp, actual), m)


def _macro_f1(m: np.ndarray, w: np.ndarray) -> np.ndarray:
    tp, predicted, actual = _per_class(m)
    return _macro(_ratio(2 * tp, predicted + actual), m)


@dataclass(frozen=True)
class Metric:
    """A metric of the confusion matrix. binary: defined for two classes only (class 1 is positive);
    weighted: needs per-example weights; higher_is_better: its direction when it is optimized."""

    function: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_better: bool = True
    binary: bool = False
    weighted: bool = False


METRICS: dict[str, Metric] = {
    "accuracy": Metric(_accuracy),
    "error": Metric(lambda m, w: 1 - _accuracy(m, w), higher_is_better=False),
    "precision": Metric(_precision, binary=True),
    "recall": Metric(_recall, binary=True),
    "f1": Metric(_f1, binary=True),
    "macro_precision": Metric(_macro_precision),
    "macro_recall": Metric(_macro_recall),
    "macro_f1": Metric(_macro_f1),
    # Mistakes count by their example's weight, so unacceptable ones (a porn image shown) can count 10x.
    "weighted_error": Metric(_weighted_error, higher_is_better=False, weighted=True),
}
OPTIMIZING_METRICS = tuple(METRICS)


def _missing(name: str, n_classes: int | None, weighted: bool) -> str | None:
    """Why metric `name` does not exist for the task (n_classes None: not known yet), or None."""
    if name not in METRICS:
        return f"unknown metric {name!r}; choose one of {sorted(METRICS)}"
    if METRICS[name].binary and n_classes is not None and n_classes != 2:
        return f"{name} is a binary metric but the task has {n_classes} classes; use macro_{name}"
    if METRICS[name].weighted and not weighted:
        return f"{name} needs per-example weights: set evaluate.weight_column"
    return None


def check_metric(name: str, n_classes: int | None = None, weighted: bool = False) -> Metric:
    """The metric named `name`, if it exists for a task with `n_classes` classes (None: not known yet)
    and with (or without) per-example weights; else a ValueError that says what to use instead."""
    reason = _missing(name, n_classes, weighted)
    if reason:
        raise ValueError(reason)
    return METRICS[name]


def available_metrics(n_classes: int, weighted: bool) -> list[str]:
    return [name for name in METRICS if _missing(name, n_classes, weighted) is None]


def _matrices(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The confusion matrix as counts, and as summed weights (the counts again without weights)."""
    counts = confusion_matrix(y_true, y_pred, n_classes).astype(float)
    return counts, counts if weights is None else confusion_matrix(y_true, y_pred, n_classes, weights)


def metric(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None
) -> float:
    """One metric of predictions `y_pred` (n,) against labels `y_true` (n,); weights (n,) if it needs them."""
    found = check_metric(name, n_classes, weights is not None)
    return float(found.function(*_matrices(y_true, y_pred, n_classes, weights)))


def error_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of examples whose predicted label differs from the true one (a fraction in [0, 1])."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) == 0:
        raise ValueError("cannot compute an error rate on zero examples")
    return float(np.mean(y_true != y_pred))


def evaluate_predictions(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    weights: np.ndarray | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every metric the task has, with a (1 - alpha) bootstrap interval: {name: {value, low, high}}.

    The bootstrap resamples the cells of the confusion matrix (multinomial, n examples), so its cost does
    not grow with n; per-cell weights scale with the resampled counts."""
    if len(y_true) == 0:
        raise ValueError("cannot evaluate zero examples")
    counts, weighted = _matrices(y_true, y_pred, n_classes, weights)
    mean_weight = _ratio(weighted, counts)
    n = int(counts.sum())
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(n, counts.ravel() / n, size=n_boot).reshape(n_boot, n_classes, n_classes)
    samples = samples.astype(float)
    found = {}
    for name in available_metrics(n_classes, weights is not None):
        function = METRICS[name].function
        low, high = np.quantile(function(samples, samples * mean_weight), [alpha / 2, 1 - alpha / 2])
        found[name] = {"value": float(function(counts, weighted)), "low": float(low), "high": float(high)}
    return found


# -- satisficing ----------------------------------------------------------------------------------------

SATISFICING_MEASURES = ("latency_p95_ms", "latency_p95_ms_batch", "model_size_mb", "n_parameters")
# What every candidate (a sweep or recipe trial, a scheduled challenger) is measured on; latency at the
# serving batch size is measured once, on the final model.
TRIAL_MEASURES = ("latency_p95_ms", "model_size_mb", "n_parameters")


def latency_p95_ms(
    predict: Callable[[int], Any], n_calls: int = 200, warmup: int = 20, per: int = 1, blocks: int = 5
) -> float:
    """95th percentile, in milliseconds per example, of the wall time of `predict(i)`, i in range(n_calls).

    predict(i) must run the model on `per` examples (the batch size) and return once the result is ready.
    The calls are timed in `blocks` runs of n_calls each and the median of their percentiles is returned:
    on a shared machine one burst of someone else's work would otherwise move a tail percentile by half.
    """
    if n_calls < 1 or per < 1 or blocks < 1:
        raise ValueError("n_calls, per and blocks must be >= 1")
    for i in range(warmup):
        predict(i)
    percentiles = []
    for _ in range(blocks):
        timings = np.empty(n_calls)
        for i in range(n_calls):
            start = time.perf_counter()
            predict(i)
            timings[i] = time.perf_counter() - start
        percentiles.append(np.percentile(timings, 95))
    return float(np.median(percentiles) * 1000.0 / per)


def satisficing(measures: dict[str, float], bounds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each bounded measure with its upper bound and whether it is met: {name: {"value", "bound", "met"}}."""
    unknown = sorted(set(bounds) - set(measures))
    if unknown:
        raise ValueError(
            f"satisficing bound(s) on unknown measure(s) {unknown}; measured: {sorted(measures)}"
        )
    return {
        name: {"value": float(measures[name]), "bound": float(bound), "met": bool(measures[name] <= bound)}
        for name, bound in bounds.items()
    }


# -- selection ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A model up for selection: its dev value of the optimizing metric and its satisficing measures.
    There is deliberately no test field: selection never reads test."""

    name: str
    dev_metric: float
    measures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """chosen: the best feasible candidate (None when none meets every bound); feasible: names of those
    meeting every bound, best first; rejected: {name: [bounds it misses]}."""

    chosen: Candidate | None
    feasible: list[str]
    rejected: dict[str, list[str]]


def select(
    candidates: Sequence[Candidate], bounds: dict[str, float], higher_is_better: bool = True
) -> Selection:
    """The best optimizing metric on dev among the candidates that meet every satisficing bound."""
    rejected, feasible = {}, []
    for candidate in candidates:
        missed = [name for name, item in satisficing(candidate.measures, bounds).items() if not item["met"]]
        if missed:
            rejected[candidate.name] = missed
        else:
            feasible.append(candidate)
    # Stable: among equals the earlier candidate (the incumbent) stays.
    feasible.sort(key=lambda c: -c.dev_metric if higher_is_better else c.dev_metric)
    return Selection(
        chosen=feasible[0] if feasible else None, feasible=[c.name for c in feasible], rejected=rejected
    )

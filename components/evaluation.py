"""Single number evaluation metric, optimizing vs satisficing metrics.

One metric is optimized (accuracy or macro-F1 on dev, higher is better); every other measure is
satisficing: it only has to meet its bound ("maximize accuracy subject to running time <= 100 ms").
Latency is measured for real on the prediction path, one example per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of class labels, got shape {y.shape}")
    return y


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts: rows are true classes, columns predicted classes."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


def error_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of examples whose predicted label differs from the true one (a fraction in [0, 1])."""
    y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if len(y_true) == 0:
        raise ValueError("cannot compute an error rate on zero examples")
    return float(np.mean(y_true != y_pred))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """1 - error rate."""
    return 1.0 - error_rate(y_true, y_pred)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Unweighted mean over classes of F1 = 2 / (1/P + 1/R), over the classes present in y_true or y_pred
    (as scikit-learn's `f1_score(average="macro")`, a class with no true positive scoring 0)."""
    n_classes = n_classes or int(max(np.max(y_true), np.max(y_pred))) + 1
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    present = (predicted + actual) > 0
    denominator = predicted + actual
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1[present].mean())


OPTIMIZING_METRICS: dict[str, Callable[..., float]] = {"accuracy": accuracy, "macro_f1": macro_f1}


def optimizing_metric(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None
) -> float:
    """The single number the team optimizes (higher is better)."""
    if name not in OPTIMIZING_METRICS:
        raise ValueError(f"unknown optimizing metric {name!r}; choose one of {sorted(OPTIMIZING_METRICS)}")
    return OPTIMIZING_METRICS[name](y_true, y_pred, n_classes)


def latency_p95_ms(predict_one: Callable[[int], Any], n_calls: int = 200, warmup: int = 20) -> float:
    """95th percentile, in milliseconds, of the wall time of `predict_one(i)` for i in range(n_calls).

    predict_one(i) must run the model on one example (batch size 1) and return once the result is ready.
    """
    if n_calls < 1:
        raise ValueError("n_calls must be >= 1")
    for i in range(warmup):
        predict_one(i)
    timings = np.empty(n_calls)
    for i in range(n_calls):
        start = time.perf_counter()
        predict_one(i)
        timings[i] = time.perf_counter() - start
    return float(np.percentile(timings, 95) * 1000.0)


SATISFICING_MEASURES = ("latency_p95_ms", "model_size_mb")


def satisficing(measures: dict[str, float], bounds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Each measure with its upper bound and whether it is met: {name: {"value", "bound", "met"}}."""
    unknown = sorted(set(bounds) - set(measures))
    if unknown:
        raise ValueError(
            f"satisficing bound(s) on unknown measure(s) {unknown}; measured: {sorted(measures)}"
        )
    return {
        name: {"value": float(measures[name]), "bound": float(bound), "met": bool(measures[name] <= bound)}
        for name, bound in bounds.items()
    }

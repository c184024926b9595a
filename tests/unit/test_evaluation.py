import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from components.evaluation import (
    accuracy,
    confusion_matrix,
    error_rate,
    latency_p95_ms,
    macro_f1,
    optimizing_metric,
    satisficing,
)

rng = np.random.default_rng(0)
Y_TRUE = rng.integers(0, 4, size=300)
Y_PRED = np.where(rng.random(300) < 0.7, Y_TRUE, rng.integers(0, 4, size=300))


def test_metrics_match_scikit_learn():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert error_rate(Y_TRUE, Y_PRED) == pytest.approx(1 - accuracy_score(Y_TRUE, Y_PRED))
    assert macro_f1(Y_TRUE, Y_PRED, 4) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert np.array_equal(confusion_matrix(Y_TRUE, Y_PRED, 4), sk_confusion(Y_TRUE, Y_PRED, labels=range(4)))


def test_macro_f1_with_a_class_never_predicted():
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])
    assert macro_f1(y_true, y_pred, 3) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_unknown_optimizing_metric_is_named():
    with pytest.raises(ValueError, match="unknown optimizing metric 'auc'"):
        optimizing_metric("auc", Y_TRUE, Y_PRED)


def test_satisficing_bounds():
    result = satisficing({"latency_p95_ms": 12.0, "model_size_mb": 3.0}, {"latency_p95_ms": 10.0})
    assert result == {"latency_p95_ms": {"value": 12.0, "bound": 10.0, "met": False}}
    with pytest.raises(ValueError, match="unknown measure"):
        satisficing({"latency_p95_ms": 1.0}, {"memory_mb": 5})


def test_latency_is_measured_per_call():
    import time

    p95 = latency_p95_ms(lambda i: time.sleep(0.002), n_calls=20, warmup=1)
    assert 2.0 <= p95 < 50.0

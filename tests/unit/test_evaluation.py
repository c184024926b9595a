import time

import numpy as np
import pytest
from sklearn import metrics as sk

from components.evaluation import (
    Candidate,
    available_metrics,
    check_metric,
    confusion_matrix,
    error_rate,
    evaluate_predictions,
    latency_p95_ms,
    metric,
    satisficing,
    select,
)

rng = np.random.default_rng(0)
Y_TRUE = rng.integers(0, 4, size=300)
Y_PRED = np.where(rng.random(300) < 0.7, Y_TRUE, rng.integers(0, 4, size=300))
B_TRUE = rng.integers(0, 2, size=300)
B_PRED = np.where(rng.random(300) < 0.8, B_TRUE, 1 - B_TRUE)
WEIGHTS = np.where(rng.random(300) < 0.1, 10.0, 1.0)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("accuracy", sk.accuracy_score),
        ("error", lambda t, p: 1 - sk.accuracy_score(t, p)),
        ("macro_precision", lambda t, p: sk.precision_score(t, p, average="macro", zero_division=0)),
        ("macro_recall", lambda t, p: sk.recall_score(t, p, average="macro", zero_division=0)),
        ("macro_f1", lambda t, p: sk.f1_score(t, p, average="macro", zero_division=0)),
    ],
)
def test_multiclass_metrics_match_scikit_learn(name, reference):
    assert metric(name, Y_TRUE, Y_PRED, 4) == pytest.approx(reference(Y_TRUE, Y_PRED))
    # A class never predicted and one absent from both.
    y_true, y_pred = np.array([0, 1, 2, 2]), np.array([0, 1, 1, 1])
    assert metric(name, y_true, y_pred, 4) == pytest.approx(reference(y_true, y_pred))


@pytest.mark.parametrize(
    ("name", "reference"),
    [("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)],
)
def test_binary_metrics_match_scikit_learn(name, reference):
    assert metric(name, B_TRUE, B_PRED, 2) == pytest.approx(reference(B_TRUE, B_PRED))


def test_weighted_error_counts_mistakes_by_weight():
    expected = 1 - sk.accuracy_score(Y_TRUE, Y_PRED, sample_weight=WEIGHTS)
    assert metric("weighted_error", Y_TRUE, Y_PRED, 4, WEIGHTS) == pytest.approx(expected)
    assert error_rate(Y_TRUE, Y_PRED) == pytest.approx(1 - sk.accuracy_score(Y_TRUE, Y_PRED))
    assert np.array_equal(
        confusion_matrix(Y_TRUE, Y_PRED, 4), sk.confusion_matrix(Y_TRUE, Y_PRED, labels=range(4))
    )


def test_every_metric_with_an_interval():
    found = evaluate_predictions(Y_TRUE, Y_PRED, 4, WEIGHTS)
    assert set(found) == set(available_metrics(4, weighted=True))
    assert "f1" not in found and "weighted_error" in found
    for name, item in found.items():
        assert item["low"] <= item["value"] <= item["high"], name
    # The accuracy interval is close to the normal one, and shrinks with more examples.
    half = (found["accuracy"]["high"] - found["accuracy"]["low"]) / 2
    p = found["accuracy"]["value"]
    assert half == pytest.approx(1.96 * np.sqrt(p * (1 - p) / 300), rel=0.15)
    bigger = evaluate_predictions(np.tile(Y_TRUE, 10), np.tile(Y_PRED, 10), 4)
    assert bigger["accuracy"]["high"] - bigger["accuracy"]["low"] < half


@pytest.mark.parametrize(
    ("name", "classes", "weighted", "message"),
    [
        ("auc", 4, False, "unknown metric 'auc'"),
        ("f1", 10, False, "f1 is a binary metric but the task has 10 classes; use macro_f1"),
        ("weighted_error", 4, False, "needs per-example weights: set evaluate.weight_column"),
    ],
)
def test_a_metric_the_task_lacks_is_refused(name, classes, weighted, message):
    with pytest.raises(ValueError, match=message):
        check_metric(name, classes, weighted)


def test_satisficing_bounds():
    result = satisficing({"latency_p95_ms": 12.0, "model_size_mb": 3.0}, {"latency_p95_ms": 10.0})
    assert result == {"latency_p95_ms": {"value": 12.0, "bound": 10.0, "met": False}}
    with pytest.raises(ValueError, match="unknown measure"):
        satisficing({"latency_p95_ms": 1.0}, {"memory_mb": 5})


def test_selection_maximizes_subject_to_the_bounds():
    # The course's example: maximize accuracy subject to running time <= 100 ms.
    candidates = [
        Candidate("A", 0.90, {"latency_p95_ms": 80}),
        Candidate("B", 0.92, {"latency_p95_ms": 95}),
        Candidate("C", 0.95, {"latency_p95_ms": 1500}),
    ]
    chosen = select(candidates, {"latency_p95_ms": 100})
    assert chosen.chosen.name == "B"
    assert chosen.feasible == ["B", "A"] and chosen.rejected == {"C": ["latency_p95_ms"]}
    assert select(candidates, {"latency_p95_ms": 10}).chosen is None
    # Lower is better for an error; a tie keeps the earlier (incumbent) candidate.
    errors = [Candidate("old", 0.1, {}), Candidate("new", 0.1, {}), Candidate("worse", 0.2, {})]
    assert select(errors, {}, higher_is_better=False).chosen.name == "old"


def test_selection_never_sees_test():
    assert "test" not in Candidate.__dataclass_fields__


def test_latency_is_measured_per_example():
    p95 = latency_p95_ms(lambda i: time.sleep(0.002), n_calls=20, warmup=1)
    assert 2.0 <= p95 < 50.0
    assert latency_p95_ms(lambda i: time.sleep(0.004), n_calls=10, warmup=1, per=4) < 4.0

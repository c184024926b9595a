import numpy as np
import pytest

from components.same_distribution import auc_p_value, label_p_value, same_distribution


def sets(shift: float, n: int = 400, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)),
        rng.integers(0, 5, n),
        rng.normal(size=(n, d)) + shift,
        rng.integers(0, 5, n),
    )


def test_no_shift_is_the_same_distribution():
    found = same_distribution(*sets(0.0))
    assert abs(found.domain_auc - 0.5) < 0.06
    assert found.label_p_value > 0.05
    assert found.same


def test_planted_feature_shift_is_found():
    found = same_distribution(*sets(0.5))
    assert found.domain_auc > 0.8
    assert found.domain_p_value < 1e-6
    assert not found.same


def test_planted_label_shift_is_found():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(800, 4))
    labels_a = rng.integers(0, 5, 400)
    labels_b = np.where(rng.random(400) < 0.5, 0, rng.integers(0, 5, 400))  # half of b is class 0
    found = same_distribution(x[:400], labels_a, x[400:], labels_b)
    assert found.label_p_value < 1e-6
    assert not found.same


def test_auc_p_value_is_the_mann_whitney_normal_tail():
    # sd = sqrt((100 + 100 + 1) / (12 * 100 * 100)) = 0.040927; AUC 0.5 + 1.645 sd has p 0.05.
    assert auc_p_value(0.5, 100, 100) == pytest.approx(0.5)
    assert auc_p_value(0.5 + 1.6449 * 0.040927, 100, 100) == pytest.approx(0.05, abs=1e-4)


def test_label_test_ignores_classes_absent_from_both():
    assert label_p_value(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == pytest.approx(1.0)
    assert label_p_value(np.array([3, 3]), np.array([3, 3])) == 1.0

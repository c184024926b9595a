import math

import pytest

from components.dev_test_size import ci_halfwidth, min_detectable_difference, paired_sample_size


def test_wilson_halfwidth_by_hand():
    # e = 0.2, n = 400, z = 1.959964:
    # 1.959964 * sqrt(0.2 * 0.8 / 400 + 1.959964^2 / (4 * 400^2)) / (1 + 1.959964^2 / 400)
    # = 1.959964 * sqrt(0.0004 + 0.0000060025) / 1.0096036 = 1.959964 * 0.0201495 / 1.0096036 = 0.039117
    assert ci_halfwidth(0.2, 400) == pytest.approx(0.039117, abs=1e-6)
    # The course's 10,000-example dev set at 5% error: about +-0.43%.
    assert ci_halfwidth(0.05, 10_000) == pytest.approx(0.00427, abs=1e-5)


def test_paired_sample_size_by_hand():
    # Connor's formula, psi = 2 * 0.1 * 0.9 = 0.18, d = 0.03, z_a = 1.959964, z_b = 0.841621:
    # (1.959964 * 0.424264 + 0.841621 * sqrt(0.18 - 0.0009)) ^ 2 / 0.0009
    # = (0.831542 + 0.841621 * 0.423202) ^ 2 / 0.0009 = (0.831542 + 0.356176) ^ 2 / 0.0009 = 1567.9 -> 1568
    assert paired_sample_size(0.03, 0.1) == 1568


def test_min_detectable_difference_inverts_the_sample_size():
    # At the worst case e = 0.5 with 400 dev examples: (z_a + z_b) sqrt(0.5 / 400) = 0.0990 ignoring
    # the d^2 term; with it the answer is a little smaller.
    d = min_detectable_difference(400, 0.5)
    assert d == pytest.approx(0.09876, abs=1e-4)
    assert d < (1.959964 + 0.841621) * math.sqrt(0.5 / 400)
    assert paired_sample_size(d + 1e-6, 0.5) <= 400 < paired_sample_size(d - 1e-3, 0.5)
    assert min_detectable_difference(10_000, 0.5) < min_detectable_difference(400, 0.5)


def test_rates_are_validated():
    with pytest.raises(ValueError, match="error must be in"):
        ci_halfwidth(0.0, 100)
    with pytest.raises(ValueError, match="difference must be in"):
        paired_sample_size(0.9, 0.1)

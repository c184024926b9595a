import numpy as np
import pytest

from components.diagnosis import GAPS, KNOBS, Errors, Sizes, diagnose
from components.human_level import bayes_proxy, from_annotators, proxy_for


@pytest.mark.parametrize(
    ("train", "dev", "expected_problems"),
    [
        (0.01, 0.11, ["variance"]),  # high variance
        (0.15, 0.16, ["avoidable_bias"]),  # high bias
        (0.15, 0.30, ["variance", "avoidable_bias"]),  # both (variance 15% > bias 14%)
        (0.005, 0.01, []),  # neither
    ],
)
def test_seeds_table_with_human_level_one_percent(train, dev, expected_problems):
    result = diagnose(Errors(train=train, dev=dev), human_level_error=0.01, tolerance=0.02)
    assert result.problems == expected_problems
    assert result.principal == (expected_problems[0] if expected_problems else "none")
    assert result.gaps["avoidable_bias"] == pytest.approx(train - 0.01)
    assert result.gaps["variance"] == pytest.approx(dev - train)
    assert result.gaps["data_mismatch"] is None and result.gaps["dev_overfit"] is None


def test_four_gaps_with_train_dev_and_test():
    result = diagnose(Errors(train=0.05, train_dev=0.06, dev=0.12, test=0.13), human_level_error=0.01)
    assert result.gaps == pytest.approx(
        {"avoidable_bias": 0.04, "variance": 0.01, "data_mismatch": 0.06, "dev_overfit": 0.01}
    )
    assert result.problems == ["data_mismatch", "avoidable_bias"]
    assert result.knobs == list(KNOBS["data_mismatch"])


def test_to_dict_follows_the_contract():
    payload = diagnose(Errors(train=0.1, dev=0.2, train_dev=0.1, test=0.2), 0.05).to_dict()
    assert set(payload) == {
        "human_level_error",
        "errors",
        "gaps",
        "uncertainty",
        "problems",
        "principal",
        "knobs",
        "notes",
    }
    assert set(payload["errors"]) == {"train", "train_dev", "dev", "test"}
    assert set(payload["gaps"]) == set(GAPS)


def test_every_gap_has_its_own_knobs():
    for gap in GAPS:
        assert KNOBS[gap]
    assert "get a bigger dev set" in KNOBS["dev_overfit"]
    assert not set(KNOBS["avoidable_bias"]) & set(KNOBS["data_mismatch"])


@pytest.mark.parametrize("bad", [{"train": 15.0, "dev": 0.2}, {"train": 0.1, "dev": -0.1}])
def test_percents_and_negative_errors_are_refused(bad):
    with pytest.raises(ValueError, match="fraction"):
        Errors(**bad)


def test_human_level_error_as_percent_is_refused():
    with pytest.raises(ValueError, match="above 1"):
        diagnose(Errors(train=0.1, dev=0.2), human_level_error=2.0)


def test_a_small_gap_on_few_examples_is_not_a_problem():
    errors = Errors(train=0.01, train_dev=0.01, dev=0.035)
    # 2.5% data mismatch: above the 2% tolerance; on 300 dev examples it is within noise.
    noisy = diagnose(errors, 0.01, 0.02, Sizes(train=8_000, train_dev=300, dev=300))
    # z * sqrt(0.01 * 0.99 / 300 + 0.035 * 0.965 / 300) = 1.96 * sqrt(0.00014558) = 1.96 * 0.012066
    # = 0.02365 < 0.025: still a problem...
    assert noisy.uncertainty["data_mismatch"] == pytest.approx(0.02365, abs=1e-5)
    assert noisy.problems == ["data_mismatch"]
    # ...but on 150 examples each the half-width is 0.0335 > 0.025: no longer called a problem.
    fewer = diagnose(errors, 0.01, 0.02, Sizes(train=8_000, train_dev=150, dev=150))
    assert fewer.problems == [] and fewer.principal == "none"
    # The seeds' 0.5% gap on 300 dev examples, with no tolerance at all, is not a problem either.
    half_percent = diagnose(Errors(train=0.01, dev=0.015), 0.01, 0.0, Sizes(train=8_000, dev=300))
    assert half_percent.problems == []
    assert diagnose(Errors(train=0.01, dev=0.015), 0.01, 0.0).problems == ["variance"]  # without sizes


def test_negative_gaps_are_explained():
    found = diagnose(
        Errors(train=0.005, train_dev=0.08, dev=0.03, test=0.031),
        0.02,
        0.02,
        Sizes(50_000, 5_000, 5_000, 5_000),
    )
    assert "easier than the training distribution" in found.notes["data_mismatch"]
    assert "human-level performance is surpassed" in found.notes["avoidable_bias"]
    assert "dev_overfit" not in found.notes  # -0.1% is noise
    assert found.principal == "variance"


def test_human_level_bayes_proxy_is_the_lowest_level():
    # The course's medical example: typical human 3%, typical doctor 1%, experienced doctor 0.7%, team 0.5%.
    levels = {"typical_human": 0.03, "typical_doctor": 0.01, "experienced_doctor": 0.007, "team": 0.005}
    assert bayes_proxy(levels) == 0.005
    by_source = {"scan": {"expert": 0.01}, "all": {"typical_human": 0.04, "expert": 0.03}}
    assert proxy_for({"scan": 300, "phone": 100}, by_source) == pytest.approx((300 * 0.01 + 100 * 0.03) / 400)
    with pytest.raises(ValueError, match=r"must be a fraction in \[0, 1\]"):
        bayes_proxy({"expert": 3.0})


def test_human_level_from_annotators():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    annotations = np.stack([y, y, y], axis=1)
    annotations[0, 0] = 1  # annotator 0 wrong once
    annotations[1, 1] = 0  # annotator 1 wrong once
    annotations[2, :2] = 1  # annotators 0 and 1 wrong on the same example: the majority is wrong
    found = from_annotators(y, annotations)
    assert found["expert"] == pytest.approx(0.0)  # annotator 2 is never wrong
    assert found["typical_human"] == pytest.approx((0.2 + 0.2 + 0.0) / 3)
    assert found["team_of_experts"] == pytest.approx(0.1)
    assert found["disagreement"] == pytest.approx(0.3)

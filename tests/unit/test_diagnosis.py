import pytest

from components.diagnosis import GAPS, KNOBS, Errors, diagnose


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
    assert set(payload) == {"human_level_error", "errors", "gaps", "problems", "principal", "knobs"}
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

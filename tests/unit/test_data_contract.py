import great_expectations as gx
import pandas as pd
import pytest

from components.data_contract import DataContract, expectation_suite, summarize, violations

CONTRACT = DataContract(
    id_column="id", label_column="label", feature_columns=("a", "b"), labels=(0, 1), source_column="source"
)


def validate(frame: pd.DataFrame):
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("t")
        .add_dataframe_asset("d")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(expectation_suite(CONTRACT), result_format="SUMMARY")
    return violations(result, frame, CONTRACT)


def good() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["x", "y", "z"],
            "source": ["s", "s", "t"],
            "label": [0, 1, 1],
            "a": [0.0, 0.5, 1.0],
            "b": [0.1, 0.2, 0.3],
        }
    )


def test_good_data_meets_the_contract():
    assert (validate(good())) == []


def test_violations_name_expectation_column_and_sample():
    frame = good()
    frame.loc[1, "id"] = "x"
    frame.loc[2, "label"] = 7
    frame.loc[0, "a"] = 1.5
    found = {(v.expectation, v.column): v for v in (validate(frame))}
    assert found[("expect_column_values_to_be_unique", "id")].sample == ["x", "x"]
    assert found[("expect_column_values_to_be_in_set", "label")].sample == [7]
    assert found[("values in feature_range [0.0, 1.0]", "a")].unexpected_count == 1
    text = summarize(list(found.values()))
    assert "column 'a'" in text and "1.5" in text


def test_missing_column_is_reported():
    found = validate(good().drop(columns=["b"]))
    assert any(v.expectation == "expect_table_columns_to_match_set" for v in found)


def test_nan_and_inf_are_refused_with_their_rows():
    frame = good()
    frame.loc[1, "a"] = float("nan")
    frame.loc[2, "b"] = float("inf")
    found = {(v.expectation, v.column): v for v in (validate(frame))}
    assert found[("expect_column_values_to_not_be_null", "a")].rows == [1]  # GX skips NaN in "between"
    assert found[("values in feature_range [0.0, 1.0]", "b")].rows == [2]
    assert "e.g. [inf] at rows [2] (0-based)" in str(found[("values in feature_range [0.0, 1.0]", "b")])


def test_a_single_class_is_refused():
    frame = good()
    frame["label"] = 1
    found = {(v.expectation, v.column) for v in (validate(frame))}
    assert ("expect_column_unique_value_count_to_be_between", "label") in found


def test_rare_classes_are_named():
    from components.data_contract import rare_classes

    contract = DataContract(
        id_column="id", label_column="label", feature_columns=("a",), min_rows_per_class=3
    )
    found = rare_classes(pd.Series([0, 0, 0, 1, 2, 2]), contract)
    assert found.sample == ["1: 1", "2: 2"] and found.unexpected_count == 2
    assert "needs 3 examples or more" in str(found)
    assert rare_classes(pd.Series([0, 0, 0]), contract) is None


def test_drift_profile_and_divergence():
    import numpy as np

    from components.drift import drift_expectations, drifted, reference_profile

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(0.5, 0.1, 2000), "kind": rng.choice(["a", "b"], 2000)})
    profile = reference_profile(reference, ["x", "kind"], bins=10)
    assert len(profile["x"]["bins"]) == 11 and sum(profile["x"]["weights"]) == pytest.approx(1)
    assert profile["kind"]["values"] == ["a", "b"]
    context = gx.get_context(mode="ephemeral")
    batches = (
        context.data_sources.add_pandas("d")
        .add_dataframe_asset("d")
        .add_batch_definition_whole_dataframe("b")
    )
    suite = gx.ExpectationSuite(name="drift", expectations=drift_expectations(profile, 0.1))
    same = pd.DataFrame({"x": rng.normal(0.5, 0.1, 2000), "kind": rng.choice(["a", "b"], 2000)})
    moved = pd.DataFrame({"x": rng.normal(0.7, 0.1, 2000), "kind": ["a"] * 1990 + ["c"] * 10})
    for frame, expected in ((same, []), (moved, ["kind", "x"])):
        result = batches.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
        assert sorted(d.column for d in drifted(result)) == expected

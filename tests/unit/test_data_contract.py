import great_expectations as gx
import pandas as pd
import pytest

from components.data_contract import (
    ColumnRule,
    DataContract,
    expectation_suite,
    parse_rules,
    propose,
    summarize,
    violations,
)

CONTRACT = DataContract(
    id_column="id", label_column="label", feature_columns=("a", "b"), labels=(0, 1), source_column="source"
)


def validate(frame: pd.DataFrame, contract: DataContract = CONTRACT):
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("t")
        .add_dataframe_asset("d")
        .add_batch_definition_whole_dataframe("b")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(expectation_suite(contract), result_format="SUMMARY")
    return violations(result, frame, contract)


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
    assert found[("values in [0.0, 1.0]", "a")].unexpected_count == 1
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
    assert found[("values in [0.0, 1.0]", "b")].rows == [2]
    assert "e.g. [inf] at rows [2] (0-based; ids [" in str(found[("values in [0.0, 1.0]", "b")])


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


def with_rules(spec: dict) -> DataContract:
    rules, extra = parse_rules(spec)
    return DataContract(
        id_column="id",
        label_column="label",
        feature_columns=("a", "b"),
        labels=(0, 1),
        source_column="source",
        rules=rules,
        extra_columns=extra,
    )


def test_a_proposed_contract_holds_its_own_snapshot_and_reads_back():
    frame = good().assign(note=["short", None, "a longer note"])
    spec = propose(frame, unique=["id"])
    assert spec["columns"]["id"] == {"type": "string", "unique": True}  # new ids may be longer
    assert spec["columns"]["label"] == {"type": "integer", "values": [0, 1]}
    assert spec["columns"]["a"] == {"type": "float", "min": 0.0, "max": 1.0}
    assert spec["columns"]["note"]["nulls"] == 0.334  # rounded up: the snapshot passes
    assert validate(frame, with_rules(spec)) == []


def test_the_rules_of_a_contract_file_are_checked():
    contract = with_rules(
        {
            "extra_columns": "forbid",
            "columns": {
                "id": {"type": "string", "pattern": "^[a-z]$"},
                "a": {"type": "float", "min": 0.0, "max": 0.5},  # replaces feature_range for a
                "note": {"type": "string", "length": [1, 5], "nulls": 0.5},
            },
        }
    )
    frame = good().assign(note=["ok", None, "far too long"], extra=1)
    frame.loc[0, "id"] = "X"
    found = {(v.expectation, v.column): v for v in validate(frame, contract)}
    assert found[("expect_column_values_to_match_regex", "id")].sample == ["X"]
    assert found[("values in [0.0, 0.5]", "a")].rows == [2]
    assert found[("expect_column_value_lengths_to_be_between", "note")].rows == [2]
    assert "not in the contract ['extra']" in found[("expect_table_columns_to_match_set", None)].details
    assert ("expect_column_values_to_not_be_null", "note") not in found  # 1 of 3 missing is allowed


def test_an_image_shape_that_the_features_do_not_hold_is_named():
    contract = DataContract(
        id_column="id", label_column="label", feature_columns=("a", "b"), image_shape=(2, 2)
    )
    found = {v.expectation: v for v in validate(good().drop(columns="source"), contract)}
    assert "images of 2 x 2 need 4 feature columns, the data has 2" in str(found["image_shape"])


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"colums": {}}, "colums: unknown key"),
        ({"extra_columns": "maybe"}, "extra_columns: must be allow or forbid"),
        ({"columns": {"a": {"mni": 0}}}, "columns.a.mni: unknown key (known: type, min, max"),
        ({"columns": {"a": {"type": "text"}}}, "columns.a: type must be one of"),
        ({"columns": {"a": {"min": 2, "max": 1}}}, "columns.a: min 2 is above max 1"),
        ({"columns": {"a": {"min": "zero"}}}, "columns.a: min must be a number, got 'zero'"),
        ({"columns": {"a": {"nulls": 1.5}}}, "columns.a: nulls is the largest share"),
        ({"columns": {"a": {"pattern": "("}}}, "columns.a: pattern '(' is not a regular expression"),
        ({"columns": {"a": 3}}, "columns.a: must be a mapping of rules"),
    ],
)
def test_a_bad_contract_file_is_refused_naming_the_key(spec, says):
    with pytest.raises(ValueError) as raised:
        parse_rules(spec)
    assert says in str(raised.value)


def test_a_feature_without_rules_gets_the_default():
    assert CONTRACT.rule("a") == ColumnRule(type="number", min=0.0, max=1.0)

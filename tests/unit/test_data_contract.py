import great_expectations as gx
import pandas as pd

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
    return batch.validate(expectation_suite(CONTRACT), result_format="SUMMARY")


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
    assert violations(validate(good())) == []


def test_violations_name_expectation_column_and_sample():
    frame = good()
    frame.loc[1, "id"] = "x"
    frame.loc[2, "label"] = 7
    frame.loc[0, "a"] = 1.5
    found = {(v.expectation, v.column): v for v in violations(validate(frame))}
    assert found[("expect_column_values_to_be_unique", "id")].sample == ["x", "x"]
    assert found[("expect_column_values_to_be_in_set", "label")].sample == [7]
    assert found[("expect_column_values_to_be_between", "a")].unexpected_count == 1
    text = summarize(list(found.values()))
    assert "column 'a'" in text and "1.5" in text


def test_missing_column_is_reported():
    found = violations(validate(good().drop(columns=["b"])))
    assert any(v.expectation == "expect_table_columns_to_match_set" for v in found)

"""A user's table as it is: each column's kind as a person would read it, raw values to model inputs, ids
from rows, labels in their own type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.columns import (
    MISSING,
    MixedColumn,
    decode_labels,
    encode_labels,
    infer_kind,
    input_names,
    model_inputs,
    numeric_view,
    row_ids,
    unusable_columns,
)


def kind(values, **options) -> str:
    return infer_kind(pd.Series(values, name="column"), **options).kind


def test_each_kind_of_column_is_read_as_a_person_would():
    n = 200
    rng = np.random.default_rng(0)
    assert kind(rng.normal(size=n)) == "numeric"
    assert kind(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))) == "numeric"
    assert kind(rng.choice(["red", "green", "blue"], n)) == "categorical"
    assert kind(rng.choice([1, 2, 3], n)) == "categorical"  # a code such as a class 1, 2, 3
    assert kind(rng.integers(0, 90, n)) == "numeric"  # ages, counts: many values
    assert kind(rng.choice([True, False], n)) == "boolean"
    assert kind(rng.choice(["Yes", "No"], n)) == "boolean"
    assert kind(pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d")) == "date"
    assert kind(pd.date_range("2020-01-01", periods=n)) == "date"
    assert kind([f"a sentence of several words {i}" for i in range(n)]) == "text"
    assert kind([f"AB{i:05d}" for i in range(n)]) == "ignore"  # an id
    assert kind(np.arange(1, n + 1)) == "ignore"  # row numbers
    assert kind(["same"] * n) == "ignore"
    assert kind([None] * n) == "ignore"


def test_a_date_format_is_guessed_day_first_when_only_that_reads():
    found = infer_kind(pd.Series(["25/12/2020", "01/02/2021", "13/07/2019"] * 10))
    assert (found.kind, found.date_format) == ("date", "%d/%m/%Y")
    stamps = pd.Series(["2020-12-25 10:30:00", "2021-01-02 08:00:00"] * 5)
    assert infer_kind(stamps).date_format == "%Y-%m-%d %H:%M:%S"


def test_markers_of_missing_numbers_are_found_and_others_refused_with_their_rows():
    found = infer_kind(pd.Series(["1.5", "?", "2.5", "3.0", "?", "4"] * 5, name="age"))
    assert found.kind == "numeric" and found.na_values == ("?",) and "missing marked '?'" in found.why
    with pytest.raises(MixedColumn) as error:
        infer_kind(pd.Series(["12", "14", "abc", "15", "16", "17"], name="size"))
    assert error.value.rows == [2] and "column 'size' holds numbers but also 1 value(s)" in str(error.value)
    assert "row 2: 'abc'" in str(error.value)
    with pytest.raises(MixedColumn, match="holds dates"):
        infer_kind(pd.Series(["2020-01-01"] * 19 + ["2020-13-45"], name="when"))


def test_raw_values_become_the_model_inputs_whatever_the_file_stores():
    frame = pd.DataFrame(
        {
            "num": [1.5, np.nan, 3.0],
            "flag": ["Yes", "no", None],
            "code": [3.0, np.nan, 1.0],  # integers with a missing value: floats in pandas
            "city": ["Oslo", None, "Lima"],
            "when": ["2020-03-01", None, "1969-12-31"],
            "Delta (o/oo)": [1, 2, 3],
        }
    )
    kinds = {
        "num": "numeric",
        "flag": "boolean",
        "code": "categorical",
        "city": "categorical",
        "when": "date",
        "Delta (o/oo)": "numeric",
        "unused": "ignore",
    }
    x = model_inputs(frame, kinds, {"when": "%Y-%m-%d"})
    assert list(x) == ["num", "flag", "code", "city", "when", "Delta_o_oo"]
    assert np.isnan(x["num"][1]) and x["num"].dtype == np.float32 and x["num"].shape == (3,)
    np.testing.assert_array_equal(x["flag"], [1.0, 0.0, np.nan])
    assert x["code"].tolist() == ["3", MISSING, "1"]  # as the integer 3 and the string '3' read
    assert model_inputs(pd.DataFrame({"code": [3, 1]}), {"code": "categorical"})["code"].tolist() == [
        "3",
        "1",
    ]
    assert x["city"].tolist() == ["Oslo", MISSING, "Lima"]
    assert x["when"][0] == 18322 and np.isnan(x["when"][1]) and x["when"][2] == -1
    absent = model_inputs(frame[["num"]], {"num": "numeric", "city": "categorical"})
    assert absent["city"].tolist() == [MISSING] * 3  # an optional column the rows lack: all missing


def test_values_the_model_cannot_read_are_named_with_column_and_row():
    with pytest.raises(ValueError, match=r"column 'num': row 1 holds 'abc', not a number"):
        model_inputs(pd.DataFrame({"num": ["1", "abc"]}), {"num": "numeric"})
    with pytest.raises(ValueError, match=r"column 'when': row 0 holds '12/31/2020', not a date as %Y-%m-%d"):
        model_inputs(pd.DataFrame({"when": ["12/31/2020"]}), {"when": "date"}, {"when": "%Y-%m-%d"})
    with pytest.raises(ValueError, match=r"column 'flag': row 0 holds 'maybe', not a yes/no value"):
        model_inputs(pd.DataFrame({"flag": ["maybe"]}), {"flag": "boolean"})


def test_na_markers_read_as_missing():
    x = model_inputs(pd.DataFrame({"num": ["1", "?"]}), {"num": "numeric"}, na_values=["?"])
    assert x["num"][0] == 1 and np.isnan(x["num"][1])


def test_ids_from_rows_are_stable_when_rows_move_or_are_added():
    frame = pd.DataFrame({"a": [1, 2, 2, 3], "b": ["x", "y", "y", None]})
    ids = row_ids(frame)
    assert ids[2] == ids[1] + "-2" and len(set(ids)) == 4  # a repeated row gets a suffix
    grown = pd.concat([frame.iloc[[3, 0]], pd.DataFrame({"a": [9.0], "b": ["z"]}), frame.iloc[[1]]])
    assert row_ids(grown)[:2].tolist() == [ids[3], ids[0]] and row_ids(grown)[3] == ids[1]  # 3 and 3.0 alike


def test_labels_keep_their_own_type():
    assert encode_labels(pd.Series(["b", "a", "b"]), ["a", "b"]).tolist() == [1, 0, 1]
    flags = decode_labels(np.array([1, 0]), [False, True])
    assert flags.tolist() == [True, False] and flags.dtype == bool
    assert decode_labels(np.array([0]), [3, 7]).tolist() == [3]
    with pytest.raises(ValueError, match=r"1 label\(s\) not in the class list \['a', 'b'\]: 'c'"):
        encode_labels(pd.Series(["a", "c"]), ["a", "b"])


def test_input_names_are_fit_for_keras_and_unique():
    names = input_names(["Culmen Length (mm)", "Culmen-Length/mm", "_x", "a b"])
    assert names == {
        "Culmen Length (mm)": "Culmen_Length_mm",
        "Culmen-Length/mm": "Culmen-Length_mm",
        "_x": "x",
        "a b": "a_b",
    }
    assert input_names(["a b", "a_b"]) == {"a b": "a_b", "a_b": "a_b_2"}


def test_columns_with_nothing_to_learn_and_the_numeric_view():
    x = {
        "const": np.ones(4, np.float32),
        "gone": np.full(4, np.nan, np.float32),
        "c": np.array(list("abca"), object),
    }
    kinds = {"const": "numeric", "gone": "numeric", "c": "categorical"}
    assert set(unusable_columns(x, kinds)) == {"const", "gone"}
    frames = [pd.DataFrame(x), pd.DataFrame({**x, "c": np.array(list("dddd"), object)})]
    (a, b), categorical = numeric_view(frames, kinds)
    assert categorical.tolist() == [False, False, True]
    assert a[:, 2].tolist() == [0, 1, 2, 0] and b[:, 2].tolist() == [3] * 4  # codes shared across frames


def test_ids_from_rows_survive_a_batch_that_changes_a_columns_dtype():
    frame = pd.DataFrame({"flag": [True, False, True], "n": [1, 2, 3], "s": ["a", "b", "c"]})
    batch = pd.DataFrame({"flag": [None], "n": [np.nan], "s": ["d"]})  # object flags, float numbers
    both = pd.concat([frame, batch], ignore_index=True)
    assert row_ids(both)[:3].tolist() == row_ids(frame).tolist()


def test_integer_ids_are_told_from_numbers_by_name_or_order():
    rng = np.random.default_rng(0)
    unique = rng.permutation(np.arange(10_000, 99_999))[:300]
    assert infer_kind(pd.Series(unique, name="CustomerID")).kind == "ignore"
    assert infer_kind(pd.Series(unique, name="income")).kind == "numeric"  # distinct, but no id
    assert kind(np.sort(unique)) == "ignore"  # increasing in file order: numbered rows


def test_few_values_of_several_words_are_categories_not_free_text():
    levels = ["Some college, no degree", "High school diploma or more", "Masters degree in science"]
    assert kind(np.random.default_rng(0).choice(levels, 300)) == "categorical"

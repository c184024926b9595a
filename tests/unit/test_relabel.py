"""Corrected labels: every refusal names its rows; accepted corrections merge and apply."""

from __future__ import annotations

import pandas as pd
import pytest

from components.relabel import apply_corrections, check_corrections, merge_corrections

SPLIT_OF = {"a": "train", "b": "dev", "c": "dev", "d": "test", "e": "test", "f": "train_dev"}
LABELS = [0, 1, 2]


def corrections(*rows: tuple[str, object]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "corrected"])


def refusal(frame: pd.DataFrame, train: bool = False) -> str:
    with pytest.raises(ValueError) as error:
        check_corrections(frame, SPLIT_OF, LABELS, train=train)
    return str(error.value)


def test_dev_and_test_together_are_accepted():
    checked = check_corrections(corrections(("b", "2"), ("d", 0)), SPLIT_OF, LABELS)
    assert checked.to_dict("list") == {"id": ["b", "d"], "corrected": [2, 0], "split": ["dev", "test"]}


def test_unknown_ids_are_named_with_their_lines():
    message = refusal(corrections(("b", 1), ("zz", 1), ("d", 1), ("yy", 0)))
    assert "lines 3, 5: unknown id ['zz', 'yy']" in message


def test_labels_outside_the_class_list_are_named_with_their_lines():
    message = refusal(corrections(("b", 7), ("d", "cat"), ("c", 1.5), ("e", -1), ("b", 1)))
    said = "lines 2, 3, 4, 5: label ['7', 'cat', '1.5', '-1'] is not the class list ['0', '1', '2']"
    assert said in message


def test_labels_are_read_as_the_classes_they_name_in_their_own_type():
    names = ["Adelie", "Chinstrap", "Gentoo"]
    checked = check_corrections(corrections(("b", " Gentoo"), ("d", "Adelie")), SPLIT_OF, names)
    assert checked["corrected"].tolist() == ["Gentoo", "Adelie"]
    flags = check_corrections(corrections(("b", "True"), ("d", "False")), SPLIT_OF, [False, True])
    assert flags["corrected"].tolist() == [True, False]
    assert all(isinstance(v, bool) for v in flags["corrected"])
    message = refusal_for(corrections(("b", "gentoo"), ("d", "Adelie")), names)
    assert "line 2: label ['gentoo'] is not the class list ['Adelie', 'Chinstrap', 'Gentoo']" in message
    table = pd.DataFrame({"id": ["b", "d"], "species": pd.Series(["Adelie", "Adelie"], dtype="str")})
    fixed, changed, _ = apply_corrections(table, checked, "id", "species")
    assert fixed["species"].tolist() == ["Gentoo", "Adelie"] and changed == 1


def refusal_for(frame: pd.DataFrame, labels: list) -> str:
    with pytest.raises(ValueError) as error:
        check_corrections(frame, SPLIT_OF, labels)
    return str(error.value)


def test_duplicate_ids():
    message = refusal(corrections(("b", 1), ("d", 1), ("b", 2)))
    assert "lines 2, 4: id given more than once ['b']" in message


@pytest.mark.parametrize(("ids", "missing"), [(("b", "c"), "test"), (("d",), "dev")])
def test_only_dev_or_only_test_is_refused(ids, missing):
    message = refusal(corrections(*[(i, 1) for i in ids]))
    assert f"no {missing} example: fix dev and test together" in message


def test_train_rows_need_the_train_flag():
    frame = corrections(("a", 1), ("b", 1), ("d", 1), ("f", 2))
    assert "lines 2, 5: train examples; pass --train" in refusal(frame)
    assert check_corrections(frame, SPLIT_OF, LABELS, train=True)["split"].tolist() == [
        "train",
        "dev",
        "test",
        "train_dev",
    ]
    assert "no dev or test example" in refusal(corrections(("a", 1)), train=True)


def test_every_problem_in_one_message():
    message = refusal(corrections(("b", 9), ("zz", 1), ("b", 1)))
    assert message.count("\n  ") == 4  # label, unknown, duplicate, no test


def test_merge_keeps_the_newest_and_apply_changes_labels():
    merged = merge_corrections(corrections(("b", 1), ("d", 2)), corrections(("b", 0), ("e", 2)))
    assert merged.to_dict("list") == {"id": ["b", "d", "e"], "corrected": [0, 2, 2]}
    table = pd.DataFrame({"id": ["a", "b", "d", "e"], "label": [1, 1, 2, 0]})
    fixed, changed, stale = apply_corrections(
        table, corrections(("b", 0), ("e", 2), ("gone", 1)), "id", "label"
    )
    assert fixed["label"].tolist() == [1, 0, 2, 2]
    assert fixed["label"].dtype == table["label"].dtype
    assert (changed, stale) == (2, ["gone"])
    assert table["label"].tolist() == [1, 1, 2, 0]  # the input is not modified


def test_without_a_test_set_dev_alone_is_enough():
    no_test = {"b": "dev", "c": "dev", "a": "train"}
    assert check_corrections(corrections(("b", 1)), no_test, LABELS)["split"].tolist() == ["dev"]


def test_a_hand_edited_relabels_file_is_checked(tmp_path, monkeypatch):
    from pipelines.errors import UserError
    from pipelines.store.relabels import read_relabels

    monkeypatch.chdir(tmp_path)
    assert read_relabels(None).empty  # no file: no corrections
    (tmp_path / "data").mkdir()
    (tmp_path / "data/relabels.csv").write_text("id,corrected\nb,1\n\nd,x\nb,2\n")
    with pytest.raises(UserError) as error:
        read_relabels(None)
    assert "line 4: 'corrected' is not a label" in str(error.value)  # the blank line 3 still counts
    assert "lines 2, 5: id given more than once" in str(error.value)
    (tmp_path / "data/relabels.csv").write_text("id,corrected\n007,1\n")
    assert read_relabels(None).to_dict("list") == {"id": ["007"], "corrected": [1]}
    (tmp_path / "data/relabels.csv").write_text("id,corrected\n007,Gentoo\n")
    assert read_relabels(["Adelie", "Gentoo"]).to_dict("list") == {"id": ["007"], "corrected": ["Gentoo"]}

"""Fixing incorrectly labelled examples, as the seeds insist: dev and test together (they must keep coming
from one distribution), train optionally (deep learning is robust to random label errors in train).

A person reviews the relabel queue and writes the label each reviewed example should have; `check_corrections`
refuses a file that names unknown examples, labels outside the label set, an example twice, or only one of
dev and test, naming the offending rows; `apply_corrections` puts the corrected labels into a table.
Pure functions on frames; no files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

# The columns of a corrections table: the example's id and the label it should have.
ID, LABEL = "id", "corrected"


def file_lines(index: pd.Index, limit: int = 10) -> str:
    """File line numbers (header on line 1) of the rows at `index` (0-based rows): 'lines 3, 7 and 2 more'."""
    lines = [str(i + 2) for i in index]
    shown = ", ".join(lines[:limit]) + (f" and {len(lines) - limit} more" if len(lines) > limit else "")
    return ("line " if len(lines) == 1 else "lines ") + shown


def read_labels(text: pd.Series, labels: Sequence[Any] | None) -> tuple[pd.Series, pd.Series]:
    """Labels written as text (a corrections file's `corrected`) as the classes they name, in the
    classes' own type ('Adelie', 3, True), and a mask of those that name none. labels: the class list
    (None: any non-negative integer)."""
    text = text.astype(str).str.strip()
    if labels:
        written = {str(label): label for label in labels}
        return text.map(written), ~text.isin(list(written))
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() | (numbers != numbers.round()) | (numbers < 0)
    return numbers.where(~bad, 0).astype("int64"), bad


def check_corrections(
    corrections: pd.DataFrame,
    split_of: Mapping[str, str],
    labels: Sequence[Any] | None,
    train: bool = False,
) -> pd.DataFrame:
    """The reviewed corrections, checked. corrections: columns `id` and `corrected` (the label each
    example should have, as the class list writes it: 'Adelie', 3, True), one row per reviewed example,
    indexed by its row in the file; split_of: id -> split name of every current example; labels: the
    class list (None: any non-negative integer); train: whether train examples may be corrected too.

    Returns the rows with columns id, corrected (the class, in its own type) and split. Raises ValueError
    listing every problem with its file lines (the header is line 1): unknown ids, labels outside the
    class list, ids given twice, train ids without `train`, and a file that covers dev but not test or the
    reverse.
    """
    missing = [c for c in (ID, LABEL) if c not in corrections.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; columns present: {list(corrections.columns)}")
    frame = corrections[[ID, LABEL]].copy()
    frame[ID] = frame[ID].astype(str)
    problems = []
    values, outside = read_labels(frame[LABEL], labels)
    if outside.any():
        label_set = "a non-negative integer" if not labels else f"the class list {[str(v) for v in labels]}"
        shown = frame.loc[outside, LABEL].astype(str).head(5).tolist()
        problems.append(f"{file_lines(frame.index[outside])}: label {shown} is not {label_set}")
    frame["split"] = frame[ID].map(split_of)
    unknown = frame["split"].isna()
    if unknown.any():
        shown = frame.loc[unknown, ID].head(5).tolist()
        problems.append(f"{file_lines(frame.index[unknown])}: unknown id {shown} (not in any split)")
    repeated = frame[ID].duplicated(keep=False)
    if repeated.any():
        shown = frame.loc[repeated, ID].drop_duplicates().head(5).tolist()
        problems.append(f"{file_lines(frame.index[repeated])}: id given more than once {shown}")
    in_train = frame["split"].isin(["train", "train_dev"])
    if in_train.any() and not train:
        problems.append(
            f"{file_lines(frame.index[in_train])}: train examples; pass --train to correct train labels too"
        )
    covered, present = set(frame["split"].dropna()), set(split_of.values())
    for have, lack in (("dev", "test"), ("test", "dev")):
        if have in covered and lack in present and lack not in covered:
            problems.append(
                f"the file corrects {have} but no {lack} example: fix dev and test together so they keep "
                f"coming from one distribution; add the {lack} rows you reviewed (a row that keeps its "
                "label counts as reviewed)"
            )
    if not covered & {"dev", "test"} and not problems:
        problems.append("no dev or test example: fix dev and test together (train alone is not enough)")
    if problems:
        raise ValueError("\n  ".join(["refused:", *problems]))
    frame[LABEL] = values
    return frame


def merge_corrections(previous: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """All corrections so far (columns id, corrected), the newest winning for an id reviewed twice."""
    both = pd.concat([previous[[ID, LABEL]], new[[ID, LABEL]]], ignore_index=True)
    both[ID] = both[ID].astype(str)
    return both.drop_duplicates(ID, keep="last").sort_values(ID).reset_index(drop=True)


def apply_corrections(
    table: pd.DataFrame, corrections: pd.DataFrame, id_column: str, label_column: str
) -> tuple[pd.DataFrame, int, list[str]]:
    """`table` with the corrected labels (`corrections`' `corrected`, classes in the label column's own
    type, as `read_labels` gives them). Returns the new table, how many labels changed, and the ids of
    corrections whose example is no longer in the table (stale)."""
    wanted = corrections.set_index(corrections[ID].astype(str))[LABEL]
    ids = table[id_column].astype(str)
    present = ids.isin(wanted.index)
    new = ids[present].map(wanted)
    changed = int((table.loc[present, label_column].to_numpy() != new.to_numpy()).sum())
    out = table.copy()
    out.loc[present, label_column] = pd.array(new.to_list(), dtype=table[label_column].dtype)
    stale = sorted(set(wanted.index) - set(ids))
    return out, changed, stale

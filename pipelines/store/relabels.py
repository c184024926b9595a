"""Reading corrected labels: a person's corrections file (`mlstrategy relabel FILE`) and the record of all
corrections so far (data/relabels.csv), which the ingest stage applies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.relabel import ID, LABEL, file_lines, read_labels
from pipelines.errors import UserError
from pipelines.store.artifacts import RELABELS, read_frame


def read_corrections(path: Path) -> pd.DataFrame:
    """The reviewed rows of a corrections file (CSV or Parquet with columns id and corrected; a row with
    an empty `corrected` was not reviewed), indexed by their row in the file."""
    frame = _read_text_table(path)
    if LABEL not in frame.columns or ID not in frame.columns:
        raise UserError(
            f"{path}: needs columns {ID!r} and {LABEL!r} (the label each reviewed example should have; "
            f"reports/relabel_queue.csv has both); columns present: {list(frame.columns)}"
        )
    reviewed = frame[LABEL].fillna("").astype(str).str.strip() != ""
    if not reviewed.any():
        raise UserError(f"{path}: no row has a {LABEL!r} label: fill it in for the examples you reviewed")
    return frame[reviewed]


def _read_text_table(path: Path) -> pd.DataFrame:
    """A CSV (every cell as text: ids keep their leading zeros, labels are checked as written; blank lines
    kept, so that row i is line i + 2) or a Parquet file."""
    if path.suffix != ".csv" or not path.is_file():
        return read_frame(path)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except Exception as error:  # pandas raises many types for a malformed file
        raise UserError(f"{path}: cannot be read as CSV: {error}") from error


def read_relabels(labels: Sequence[Any] | None) -> pd.DataFrame:
    """The corrections so far (data/relabels.csv: id, corrected as the class it names, in the classes'
    own type), checked: the file is meant to be written by `mlstrategy relabel`, but it is a plain CSV a
    person may edit. labels: the class list (None: any non-negative integer)."""
    if not RELABELS.is_file():
        return pd.DataFrame({ID: pd.Series(dtype=str), LABEL: pd.Series(dtype=object)})
    frame = _read_text_table(RELABELS)
    if list(frame.columns[:2]) != [ID, LABEL]:
        raise UserError(f"{RELABELS}: expected columns {ID!r}, {LABEL!r}, found {list(frame.columns)}")
    frame = frame[(frame[[ID, LABEL]] != "").any(axis=1)]  # blank lines
    values, bad = read_labels(frame[LABEL], labels)
    problems = []
    if bad.any():
        problems.append(f"{file_lines(frame.index[bad])}: {LABEL!r} is not a label of the class list")
    repeated = frame[ID].duplicated(keep=False)
    if repeated.any():
        problems.append(f"{file_lines(frame.index[repeated])}: id given more than once")
    if problems:
        raise UserError(
            f"{RELABELS}: " + "; ".join(problems) + " (write it with `mlstrategy relabel`, or restore it: "
            "`git checkout data/relabels.csv`)"
        )
    return frame.assign(**{LABEL: values})

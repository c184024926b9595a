"""Stage `ingest`: the examples into data/ingested/dataset.parquet: the bundled digits, or the user's file
or image folder, then every accepted batch in data/batches (in name order), with the labels people
corrected (data/relabels.csv, written by `mlstrategy relabel`). Only `validate` makes them the current data
version (data/raw/dataset.parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task

from components.columns import row_ids
from components.datasets import two_source_digits
from components.relabel import apply_corrections
from pipelines.errors import DataError
from pipelines.store.artifacts import INGESTED, RELABELS, batch_files, write_frame
from pipelines.store.params import DataParams, IngestParams, Params
from pipelines.store.readers import read_dataset
from pipelines.store.relabels import read_relabels
from pipelines.store.tables import key_columns


@task
def load_bundled_digits(ingest: IngestParams) -> pd.DataFrame:
    return two_source_digits(ingest.phone, seed=ingest.seed)


@task
def load_user_table(data: DataParams) -> pd.DataFrame:
    path = Path(data.path)
    frame = read_dataset(path, data)
    if data.make_ids and data.id_column in frame.columns:
        raise DataError(
            f"{path}: has a column {data.id_column!r} already, and params.yaml data.make_ids asks ingest "
            "to make it: set data.make_ids: false to use the file's ids, or name another data.id_column"
        )
    made = [data.id_column] if data.make_ids else []
    missing = [column for column in key_columns(data) if column not in frame.columns and column not in made]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing} named in params.yaml data.*; columns present: "
            f"{list(frame.columns)[:20]}"
            + (" (add an id column, e.g. the row number as a string)" if data.id_column in missing else "")
        )
    return frame


@task
def append_batches(frame: pd.DataFrame, paths: list[Path], data: DataParams) -> pd.DataFrame:
    """`frame` with the rows of the batches at `paths` after it; a batch must have exactly its columns."""
    batches = []
    for path in paths:
        batch = read_dataset(path, data)
        if list(batch.columns) != list(frame.columns):
            missing = [c for c in frame.columns if c not in batch.columns]
            extra = [c for c in batch.columns if c not in frame.columns]
            raise DataError(
                f"{path}: its columns differ from the data's (missing {missing[:10]}, extra {extra[:10]}"
                + (", or another order" if not missing and not extra else "")
                + "); a batch has the columns of the data it extends"
            )
        batches.append(batch)
    return pd.concat([frame, *batches], ignore_index=True) if batches else frame


@flow(name="ingest")
def ingest_flow(params: Params) -> dict:
    data = params.data
    frame = load_bundled_digits(params.ingest) if data.path is None else load_user_table(data)
    batches = batch_files()
    frame = append_batches(frame, batches, data)
    if data.make_ids and data.path is not None:
        # From the rows' values, after the batches: a row keeps its id whichever file brought it.
        frame.insert(0, data.id_column, row_ids(frame))
    relabeled = 0
    corrections = read_relabels(data.labels)
    if len(corrections):
        frame, relabeled, stale = apply_corrections(frame, corrections, data.id_column, data.label_column)
        if stale:
            get_run_logger().warning(
                "%s: %d corrected example(s) no longer in the data, ignored: %s",
                RELABELS,
                len(stale),
                stale[:5],
            )
    write_frame(INGESTED, frame)
    summary = {
        "rows": len(frame),
        "columns": len(frame.columns),
        "batches": len(batches),
        "relabeled": relabeled,
    }
    if params.data.source_column:
        summary["sources"] = frame[params.data.source_column].value_counts().sort_index().to_dict()
    get_run_logger().info("ingested %s into %s", summary, INGESTED)
    return summary

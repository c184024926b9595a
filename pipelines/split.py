"""Stage `split`: train / train_dev / dev / test files under data/splits/, and metrics/split.json."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger, task

from components.train_dev import SPLITS, assign_splits
from pipelines.artifacts import (
    RAW_DATA,
    SPLIT,
    VALIDATION,
    read_frame,
    read_json,
    split_path,
    write_frame,
    write_json,
)
from pipelines.errors import UserError
from pipelines.params import Params


@task
def assign(frame: pd.DataFrame, params: Params):
    data = params.data
    sources = frame[data.source_column].astype(str).to_numpy() if data.source_column else None
    try:
        return assign_splits(
            frame[data.id_column].astype(str).to_numpy(),
            sources=sources,
            target_sources=data.target_sources,
            policy=params.split,
        )
    except ValueError as error:
        raise UserError(f"{RAW_DATA}: {error}") from error


@flow(name="split")
def split_flow(params: Params) -> dict:
    if not read_json(VALIDATION, "validate").get("success"):
        raise UserError(f"{VALIDATION}: the raw data did not pass validation; fix it and rerun `dvc repro`")
    frame = read_frame(RAW_DATA, "ingest")
    assignment, plan = assign(frame, params)
    source = params.data.source_column
    sizes, by_source = {}, {}
    for name in SPLITS:
        part = frame[assignment == name]
        if name in ("dev", "test") and part.empty:
            raise UserError(
                f"{RAW_DATA}: the {name} split is empty; it needs examples of {params.data.target_sources}"
            )
        write_frame(split_path(name), part)
        sizes[name] = len(part)
        by_source[name] = part[source].value_counts().sort_index().to_dict() if source else {"all": len(part)}
    summary = {
        "sizes": sizes,
        "sizes_by_source": by_source,
        "policy": plan.rule,
        "ratios": {name: round(size / len(frame), 4) for name, size in sizes.items()},
        "target_sources": list(params.data.target_sources),
    }
    write_json(SPLIT, summary)
    get_run_logger().info("%s -> %s", plan.rule, sizes)
    return summary

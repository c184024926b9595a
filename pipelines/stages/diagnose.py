"""Stage `diagnose`: the four gaps against human-level error, with their uncertainty at the split sizes;
the problems, the principal one and its knobs."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger

from components import diagnosis, human_level
from pipelines.errors import UserError
from pipelines.store.artifacts import (
    DIAGNOSIS,
    ERROR_LADDER,
    EVALUATION,
    SPLIT,
    read_frame,
    read_json,
    split_path,
    write_frame,
    write_json,
)
from pipelines.store.params import Params


def human_levels(params: Params) -> dict[str, dict[str, float]]:
    """{source: {level: error}}: params' figures, replaced per source by the annotators' when the data has
    annotator columns (measured on train and dev, where the labels are known)."""
    levels = {source: dict(found) for source, found in params.diagnose.human_level.items()}
    data = params.data
    if not data.annotator_columns:
        return levels
    # The real examples: synthesized copies carry their original's annotations.
    frame = pd.concat([read_frame(split_path(name, False), "split") for name in ("train", "dev")])
    groups = frame.groupby(data.source_column) if data.source_column else [(human_level.ANY_SOURCE, frame)]
    for source, rows in groups:
        measured = human_level.from_annotators(
            rows[data.label_column].to_numpy(), rows[list(data.annotator_columns)].to_numpy()
        )
        levels[str(source)] = {k: v for k, v in measured.items() if k in human_level.LEVELS}
    return levels


PLACEHOLDER_WARNING = (
    "human-level error is a placeholder (params.yaml diagnose.human_level): avoidable bias is measured "
    "against 0; set the error of people doing the task, e.g. {all: {typical_human: 0.02}}, or measure it "
    "with data.annotator_columns"
)


@flow(name="diagnose")
def diagnose_flow(params: Params) -> dict:
    evaluation = read_json(EVALUATION, "evaluate")
    split = read_json(SPLIT, "split")
    levels = human_levels(params)
    try:
        proxies = {
            name: human_level.proxy_for(mix, levels)
            for name, mix in split["sizes_by_source"].items()
            if sum(mix.values())
        }
        errors = diagnosis.Errors(**evaluation["errors"])
        sizes = diagnosis.Sizes(**{name: n or None for name, n in evaluation["sizes"].items()})
        result = diagnosis.diagnose(
            errors, proxies["train"], params.diagnose.tolerance, sizes, params.diagnose.alpha
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{EVALUATION}: cannot diagnose: {error}") from error
    payload = result.to_dict()
    payload["human_level"] = {
        "levels": levels,
        "proxy_by_split": proxies,
        "measured_by_annotators": list(params.data.annotator_columns),
        # `mlstrategy init` without --human-level: nobody measured it, avoidable bias is read against 0.
        "placeholder": params.diagnose.placeholder and not params.data.annotator_columns,
    }
    write_json(DIAGNOSIS, payload)
    ladder = [("human", result.human_level_error)] + [
        (k, v) for k, v in payload["errors"].items() if v is not None
    ]
    write_frame(ERROR_LADDER, pd.DataFrame(ladder, columns=["rung", "error"]))
    logger = get_run_logger()
    logger.info(
        "gaps %s (+- %s); principal problem: %s",
        {k: None if v is None else round(v, 4) for k, v in result.gaps.items()},
        {k: None if v is None else round(v, 4) for k, v in result.uncertainty.items()},
        result.principal,
    )
    for gap, note in result.notes.items():
        logger.info("%s below zero: %s", gap, note)
    if payload["human_level"]["placeholder"]:
        logger.warning(PLACEHOLDER_WARNING)
    return payload

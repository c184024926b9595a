"""Stage `diagnose`: the four gaps against human-level error, the principal problem and its knobs."""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger

from components import diagnosis
from pipelines.artifacts import DIAGNOSIS, ERROR_LADDER, EVALUATION, read_json, write_frame, write_json
from pipelines.errors import UserError
from pipelines.params import Params


@flow(name="diagnose")
def diagnose_flow(params: Params) -> dict:
    evaluation = read_json(EVALUATION, "evaluate")
    try:
        errors = diagnosis.Errors(**evaluation["errors"])
        result = diagnosis.diagnose(errors, params.diagnose.human_level_error, params.diagnose.tolerance)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{EVALUATION}: cannot diagnose: {error}") from error
    payload = result.to_dict()
    write_json(DIAGNOSIS, payload)
    ladder = [("human", result.human_level_error)] + [
        (k, v) for k, v in payload["errors"].items() if v is not None
    ]
    write_frame(ERROR_LADDER, pd.DataFrame(ladder, columns=["rung", "error"]))
    get_run_logger().info(
        "gaps %s; principal problem: %s",
        {k: None if v is None else round(v, 4) for k, v in result.gaps.items()},
        result.principal,
    )
    return payload

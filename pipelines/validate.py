"""Stage `validate`: the raw data against its contract with a Great Expectations checkpoint.

Data Docs go to reports/data_docs/ on success. On violation the stage fails with the top violations,
the previous Data Docs stay, and this run's Data Docs go to reports/failed/data_docs/.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task

from components.data_contract import DataContract, expectation_suite, summarize, violations
from pipelines.artifacts import DATA_DOCS, RAW_DATA, VALIDATION, atomic_output, read_frame, write_json
from pipelines.errors import UserError
from pipelines.params import Params
from pipelines.tables import feature_columns

FAILED_DATA_DOCS = Path("reports/failed/data_docs")


def contract_for(frame: pd.DataFrame, params: Params) -> DataContract:
    data = params.data
    return DataContract(
        id_column=data.id_column,
        label_column=data.label_column,
        feature_columns=tuple(feature_columns(frame, data)),
        feature_range=data.feature_range,
        labels=tuple(data.labels) if data.labels else None,
        source_column=data.source_column,
        min_rows_per_class=data.min_rows_per_class,
    )


@task
def run_checkpoint(frame: pd.DataFrame, contract: DataContract, docs_dir: Path):
    """Validate `frame` with a GX checkpoint whose UpdateDataDocsAction writes Data Docs to `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={
            "local_site": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("raw")
        .add_dataframe_asset("dataset")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(expectation_suite(contract))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="raw_data", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="raw_data",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    return next(iter(result.run_results.values()))


@flow(name="validate")
def validate_flow(params: Params) -> dict:
    logger = get_run_logger()
    frame = read_frame(RAW_DATA, "ingest")
    contract = contract_for(frame, params)
    with atomic_output(DATA_DOCS) as docs_dir:
        result = run_checkpoint(frame, contract, docs_dir)
        found = violations(result, frame, contract)
        if found:
            with atomic_output(FAILED_DATA_DOCS) as failed_dir:
                docs_dir.rename(failed_dir)
            raise UserError(
                f"{RAW_DATA} violates the data contract "
                f"({len(found)} of {len(result.results) + 1} checks):\n"
                f"{summarize(found)}\nData Docs: {FAILED_DATA_DOCS / 'index.html'}"
            )
    summary = {"success": True, "rows": len(frame), "evaluated": len(result.results)}
    write_json(VALIDATION, summary)
    logger.info(
        "%d expectations met on %d rows; Data Docs: %s",
        len(result.results),
        len(frame),
        DATA_DOCS / "index.html",
    )
    return summary

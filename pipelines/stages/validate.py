"""Stage `validate`: the ingested batch against its contract (a Great Expectations checkpoint, with Data
Docs) and against the trusted reference's distributions (the drift guard, a validation of its own); a batch
that passes becomes the current data version, data/raw/dataset.parquet (write, audit, publish).

Data Docs go to reports/data_docs/ on success. On violation the stage fails with the top violations, the
current data version and the previous Data Docs stay, and this run's Data Docs go to
reports/failed/data_docs/. The contract is params.yaml data.* plus data/contract.yaml's per-column rules.
The reference profile (data/reference_profile.json) is made from the first data that passes; delete it to
take the current data as the new reference. Drift warns or fails by params (drift.mode).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task

from components import drift
from components.data_contract import DataContract, expectation_suite, new_categories, summarize, violations
from pipelines.errors import DataError
from pipelines.store.artifacts import (
    CONTRACT,
    DATA_DOCS,
    FAILED_DATA_DOCS,
    INGESTED,
    RAW_DATA,
    REFERENCE_PROFILE,
    VALIDATION,
    atomic_output,
    read_frame,
    read_json,
    write_json,
)
from pipelines.store.contract import load_contract
from pipelines.store.params import Params
from pipelines.store.tables import feature_columns


def contract_for(frame: pd.DataFrame, params: Params, contract_file: Path = CONTRACT) -> DataContract:
    """The contract of `frame`: params.yaml data.* and the contract file's rules."""
    data = params.data
    rules, extra_columns = load_contract(contract_file)
    # Columns the contract does not name are features only where it allows them (else: violations).
    features = [c for c in feature_columns(frame.columns, data) if extra_columns or c in rules]
    return DataContract(
        id_column=data.id_column,
        label_column=data.label_column,
        feature_columns=tuple(features),
        feature_range=data.feature_range,
        labels=tuple(data.labels) if data.labels else None,
        source_column=data.source_column,
        min_rows_per_class=data.min_rows_per_class,
        rules=rules,
        extra_columns=extra_columns,
        image_shape=data.image_shape,
        kinds=data.kinds if data.features is not None else None,
        # A date stored as text must parse; Parquet's own timestamps need no format.
        date_formats={
            column: date_format
            for column, date_format in data.date_formats.items()
            if column in frame.columns and not pd.api.types.is_datetime64_any_dtype(frame[column])
        },
        new_categories=data.new_categories,
    )


def drift_columns(contract: DataContract, params: Params) -> list[str]:
    """The columns the drift guard profiles: label, source and features, but of a table only those whose
    distribution a profile holds (numbers, flags, categories; not dates, free text or ids)."""
    profiled = {c for c, kind in params.data.kinds.items() if kind in ("numeric", "boolean", "categorical")}
    return [
        c
        for c in contract.columns
        if c != contract.id_column
        and (params.data.features is None or c in profiled or c in contract.key_columns)
    ]


@task
def run_checkpoint(frame: pd.DataFrame, suite, docs_dir: Path):
    """Validate `frame` against the GX `suite` with a checkpoint whose UpdateDataDocsAction writes Data
    Docs to `docs_dir`."""
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
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="raw_data", data=_whole_frame(context), suite=context.suites.add(suite))
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


@task
def check_drift(frame: pd.DataFrame, reference: dict, threshold: float) -> list[drift.Drift]:
    """The drift expectations in a validation of their own: GX draws a chart per KL expectation in Data
    Docs, 12 s for 66 columns, so they stay out of the checkpoint's Data Docs."""
    import great_expectations as gx

    batch = _whole_frame(gx.get_context(mode="ephemeral")).get_batch(batch_parameters={"dataframe": frame})
    suite = gx.ExpectationSuite(name="drift", expectations=drift.drift_expectations(reference, threshold))
    return drift.drifted(batch.validate(suite, result_format="SUMMARY"))


def _whole_frame(context):
    """The GX batch definition of a whole pandas frame, passed in at run time."""
    return (
        context.data_sources.add_pandas("raw")
        .add_dataframe_asset("dataset")
        .add_batch_definition_whole_dataframe("all_rows")
    )


@flow(name="validate")
def validate_flow(params: Params) -> dict:
    logger = get_run_logger()
    options = params.drift
    frame = read_frame(INGESTED, "ingest")
    contract = contract_for(frame, params)
    reference = _reference(options.mode)
    with atomic_output(DATA_DOCS) as docs_dir:
        result = run_checkpoint(frame, expectation_suite(contract), docs_dir)
        found = violations(result, frame, contract)
        unseen = new_categories(result) if contract.new_categories == "warn" else []
        moved = check_drift(frame, reference, options.threshold) if reference else []
        failing = found or (moved and options.mode == "fail")
        page = validation_page(docs_dir)
        if failing:
            with atomic_output(FAILED_DATA_DOCS) as failed_dir:
                docs_dir.rename(failed_dir)
            what = (
                [
                    f"{INGESTED} violates the data contract (params.yaml data.*, {CONTRACT}; "
                    f"{len(found)} findings):\n{summarize(found)}"
                ]
                if found
                else []
            )
            if moved and options.mode == "fail":
                what.append(_drift_message(moved, options.threshold) + " (drift.mode: fail)")
            what += [hint for hint in [yaml_boolean_labels(frame, params)] if found and hint]
            raise DataError(
                "\n".join(what) + f"\nThe current data version ({RAW_DATA}) is unchanged. "
                f"Data Docs: {FAILED_DATA_DOCS / page}"
            )
        publish(INGESTED, RAW_DATA)
    if moved:
        logger.warning(_drift_message(moved, options.threshold))
    if unseen:
        logger.warning(
            "%s: categories the contract (%s) does not know; the model reads them as its out-of-vocabulary "
            "category (data.new_categories: fail refuses such a batch):\n%s",
            INGESTED,
            CONTRACT,
            summarize(unseen),
        )
    if options.mode != "off" and reference is None:
        columns = [c for c in drift_columns(contract, params) if c in frame.columns]
        write_json(REFERENCE_PROFILE, drift.reference_profile(frame, columns, options.bins))
        logger.info("drift guard: %s made from this data, the reference for the next runs", REFERENCE_PROFILE)
    summary = {
        "success": True,
        "rows": len(frame),
        "evaluated": len(result.results),
        "drift": {
            "mode": options.mode,
            "reference": "compared" if reference else ("created" if options.mode != "off" else "off"),
            "threshold": options.threshold,
            "drifted": [{"column": d.column, "divergence": d.divergence} for d in moved],
        },
        "new_categories": [
            {"column": v.column, "rows": v.unexpected_count, "values": v.sample} for v in unseen
        ],
    }
    write_json(VALIDATION, summary)
    logger.info(
        "%d expectations met on %d rows; Data Docs: %s", len(result.results), len(frame), DATA_DOCS / page
    )
    return summary


def yaml_boolean_labels(frame: pd.DataFrame, params: Params) -> str | None:
    """The likely cause when params.yaml's labels are booleans and the label column holds text: YAML reads
    yes, no, on and off unquoted as booleans."""
    labels, column = params.data.labels or [], params.data.label_column
    if not labels or not all(isinstance(v, bool) for v in labels) or column not in frame:
        return None
    if pd.api.types.is_bool_dtype(frame[column]):
        return None
    shown = sorted(frame[column].dropna().astype(str).unique().tolist())[:5]
    return (
        f"params.yaml data.labels is {labels}, booleans, but column {column!r} holds text ({shown}): "
        "YAML reads yes, no, on and off unquoted as booleans; quote them, e.g. labels: ['no', 'yes']"
    )


def validation_page(docs_dir: Path) -> Path:
    """The Data Docs page of this validation, relative to `docs_dir`. Linked rather than the index: the
    index lists its pages with scripts from CDNs, the page itself is plain HTML and reads offline."""
    pages = sorted(docs_dir.glob("validations/**/*.html"))
    return pages[-1].relative_to(docs_dir) if pages else Path("index.html")


def publish(batch: Path, current: Path) -> None:
    """Make the validated `batch` the current data version; a copy, so that ingest's output stays what
    DVC recorded for it."""
    import shutil

    with atomic_output(current) as tmp:
        shutil.copyfile(batch, tmp)


def _reference(mode: str) -> dict | None:
    """The trusted reference's profile, when the drift guard is on and one was made."""
    if mode == "off" or not REFERENCE_PROFILE.is_file():
        return None
    return read_json(REFERENCE_PROFILE, "validate")


def _drift_message(moved: list[drift.Drift], threshold: float) -> str:
    return (
        f"{INGESTED}: {len(moved)} column(s) drifted from the reference ({REFERENCE_PROFILE}; KL divergence "
        f"above {threshold}):\n{summarize(moved)}"
    )

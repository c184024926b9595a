"""Stage `report`: reports/strategy.html, and the whole execution logged to its MLflow run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components import diagnosis, report
from components.evaluation import confusion_matrix
from pipelines.running.runtime import execution_id
from pipelines.store.artifacts import (
    ANALYZE,
    COMPARE,
    COMPARE_FIGURE,
    CONFUSION_DEV,
    DIAGNOSIS,
    ERROR_GALLERY,
    ERROR_SAMPLE,
    ERROR_TABLE,
    EVALUATION,
    IMPROVE,
    IMPROVED_MODEL,
    RAW_DATA,
    RELABEL_QUEUE,
    REPORT,
    SPLIT,
    SWEEP,
    SWEEP_TRIALS,
    SYNTHESIS,
    TRAIN_HISTORY,
    TRAINING,
    VALIDATION,
    read_frame,
    read_json,
    require,
    split_path,
    write_text,
)
from pipelines.store.params import Params
from pipelines.store.tables import classes
from pipelines.tracking import registry, runs


def notes_for(found: dict, split: dict, params: Params) -> list[str]:
    notes = []
    if found["human_level"].get("placeholder"):
        notes.append(
            "The human-level error is a placeholder (params.yaml diagnose.human_level, written by "
            "`mlstrategy init` without --human-level): avoidable bias is measured against 0 and may not be "
            "a real problem. Set the error people make on this task."
        )
    errors = found["errors"]
    if errors["train"] < found["human_level_error"] and "avoidable_bias" not in found.get("notes", {}):
        notes.append(
            "Training error is below human-level error: human-level performance is surpassed, avoidable "
            "bias can no longer be read off, and progress will slow."
        )
    if not split["sizes"].get("test"):
        notes.append("There is no test set: no unbiased estimate of the final performance.")
    for knob, gaps in diagnosis.NON_ORTHOGONAL_KNOBS.items():
        moved = " and ".join(gap.replace("_", " ") for gap in gaps)
        state = "on" if getattr(params.train, knob) else "off"
        notes.append(
            f"{knob.replace('_', ' ').capitalize()} is not an orthogonal knob: it moves {moved} together. "
            f"It is {state} in this run."
        )
    return notes


def metric_name(tag: str) -> str:
    """An error-analysis tag as an MLflow metric name: 'confusion=3->8' -> 'confusion:3 to 8' (MLflow
    allows neither '=' nor '>'; `runs.name_for` replaces the rest it refuses)."""
    return runs.name_for(tag.replace("=", ":").replace("->", " to "))


def split_metrics(split: dict) -> dict[str, float]:
    """The split checks as MLflow metrics (split/...), the ones that exist for this run."""
    same = split.get("dev_test_same_distribution") or {}
    found = {
        "split/dev_test_domain_auc": same.get("domain_auc"),
        "split/train_vs_dev_domain_auc": split.get("train_vs_dev_domain_auc"),
        "split/dev_ci_halfwidth": split.get("dev_ci_halfwidth"),
        "split/test_ci_halfwidth": split.get("test_ci_halfwidth"),
        "split/min_detectable_difference": split.get("min_detectable_difference"),
        "split/leaks": split["leaks"]["count"],
        "split/moved_since_last": split["moved_since_last"],
    }
    return {name: value for name, value in found.items() if value is not None}


# One function per stage artifact: the run's metrics each contributes, under its own prefix.
def diagnosis_metrics(found: dict) -> dict[str, float]:
    metrics = {f"error/{name}": value for name, value in found["errors"].items() if value is not None}
    metrics["human_level_error"] = found["human_level_error"]
    metrics.update({f"gap/{name}": value for name, value in found["gaps"].items() if value is not None})
    metrics.update({f"gap_uncertainty/{k}": v for k, v in found["uncertainty"].items() if v is not None})
    return metrics


def evaluation_metrics(evaluation: dict) -> dict[str, float]:
    metrics = {}
    for metric, values in evaluation["metrics"].items():
        metrics.update({f"{metric}/{name}": value for name, value in values.items()})
    return {**metrics, **evaluation["measures"]}


def analysis_metrics(analysis: dict | None) -> dict[str, float]:
    if not analysis:
        return {}
    names = {row["tag"]: metric_name(row["tag"]) for row in analysis["tags"]}
    metrics = {f"error_analysis/{names[row['tag']]}/share": row["share"] for row in analysis["tags"]}
    metrics["label_issues/dev_share"] = analysis["label_issues"]["dev_share_of_errors"]
    return metrics


def synthesis_metrics(synthesis: dict | None) -> dict[str, float]:
    if not synthesis or not synthesis["enabled"]:
        return {}
    metrics = {"synthesize/repeated_share": synthesis["repeated_share"]}
    metrics.update({f"synthesize/domain_auc_{k}": v for k, v in synthesis["domain_auc"].items()})
    for when, found_then in synthesis.get("data_mismatch", {}).items():
        metrics[f"synthesize/data_mismatch_{when}"] = found_then["data_mismatch"]
    return metrics


def training_metrics(training: dict | None) -> dict[str, float]:
    if not training:
        return {}
    return {f"train/{k}": training[k] for k in ("parameters", "flops_per_example", "examples_per_second")}


def comparison_metrics(comparisons: dict | None) -> dict[str, float]:
    metrics = {}
    for key, points in (comparisons or {}).items():
        if key == "multitask":
            metrics["compare/multitask_error"] = points["mean_multitask_error"]
            metrics["compare/single_task_error"] = points["mean_single_task_error"]
            continue
        for point in points["points"]:
            size = point.get("train_size", point.get("target_size"))
            metrics.update(
                {f"compare/{key}/{name}/n{size}": value for name, value in point.items() if "error" in name}
            )
    return metrics


def sweep_metrics(sweep: dict | None) -> dict[str, float]:
    if not sweep or not sweep["best"]:
        return {}
    return {"sweep/best_dev_metric": sweep["best"]["dev_metric"], "sweep/trials": sweep["trials"]}


def read_confusion(path: Path = CONFUSION_DEV) -> pd.DataFrame:
    """The dev confusion pairs (actual, predicted) by class name, every name as the text it was written
    as: 'NA', 'None', '' and '01' are class names here, not missing values or numbers."""
    return pd.read_csv(require(path, "evaluate"), dtype=str, keep_default_na=False)


@task(cache_policy=NO_CACHE)
def draw_figures(
    found: dict,
    history: pd.DataFrame,
    confusion: pd.DataFrame,
    classes: list[str],
    sweep: dict | None = None,
    sweep_trials: pd.DataFrame | None = None,
) -> dict[str, bytes]:
    names = pd.Index(classes)
    positions = [names.get_indexer(confusion[side]) for side in ("actual", "predicted")]
    matrix = confusion_matrix(*positions, len(classes))
    extra = {}
    if sweep and sweep_trials is not None and len(sweep_trials):
        parameters = list(sweep["rounds"][0]["box"])
        rows = sweep_trials.to_dict(orient="records")
        figure = report.sweep_figure(rows, parameters, sweep["metric"], sweep.get("anytime", ()))
        extra["sweep"] = report.png_bytes(figure)
    return extra | {
        "error_ladder": report.png_bytes(
            report.error_ladder_figure(found["human_level_error"], found["errors"], found["principal"])
        ),
        "learning_curves": report.png_bytes(report.learning_curves_figure(history.to_dict(orient="list"))),
        "confusion": report.png_bytes(report.confusion_figure(matrix, classes)),
    }


@task(cache_policy=NO_CACHE)
def log_to_mlflow(
    params: Params,
    found: dict,
    evaluation: dict,
    split: dict,
    improve: dict,
    history: pd.DataFrame,
    figures: dict[str, bytes],
    sweep: dict | None = None,
    analysis: dict | None = None,
    synthesis: dict | None = None,
    comparisons: dict | None = None,
    training: dict | None = None,
) -> str:
    metrics = {
        **diagnosis_metrics(found),
        **evaluation_metrics(evaluation),
        **{f"size/{name}": n for name, n in split["sizes"].items()},
        **split_metrics(split),
        "improve/final_dev_metric": improve["final_dev_metric"],
        "improve/iterations": len(improve["iterations"]),
        **analysis_metrics(analysis),
        **synthesis_metrics(synthesis),
        **training_metrics(training),
        **comparison_metrics(comparisons),
        **sweep_metrics(sweep),
    }
    curves = {f"curve/{column}": history[column] for column in history.columns if column != "epoch"}
    tags = {
        **runs.reproducibility_tags(RAW_DATA),
        "mlstrategy.principal": found["principal"],
        "mlstrategy.improve.stopped_because": improve["stopped_because"],
    }
    if training:
        tags.update(
            {
                "mlstrategy.train.family": training["family"],
                "mlstrategy.train.devices": ",".join(training["devices"]),
                "mlstrategy.train.dtype_policy": training["dtype_policy"],
            }
        )
    with tempfile.TemporaryDirectory() as plots:
        for name, png in figures.items():
            Path(plots, f"{name}.png").write_bytes(png)
        return runs.log_pipeline_run(
            params.mlflow.experiment,
            execution_id(),
            params.model_dump(mode="json"),
            metrics,
            curves,
            tags,
            artifacts={
                "report": REPORT,
                "plots": Path(plots),
                "metrics": Path("metrics"),
                # The gallery is among the plots already.
                "error_analysis": [ERROR_TABLE, ERROR_SAMPLE, RELABEL_QUEUE],
            },
        )


@flow(name="report")
def report_flow(params: Params) -> dict:
    found = read_json(DIAGNOSIS, "diagnose")
    evaluation = read_json(EVALUATION, "evaluate")
    split = read_json(SPLIT, "split")
    improve = read_json(IMPROVE, "improve")
    history = read_frame(TRAIN_HISTORY, "train")
    confusion = read_confusion()
    # The sweep is a side branch of the DAG: the report shows it when it has run.
    sweep = read_json(SWEEP, "sweep") if SWEEP.is_file() else None
    trials = read_frame(SWEEP_TRIALS, "sweep") if sweep and SWEEP_TRIALS.is_file() else None
    figures = draw_figures(found, history, confusion, evaluation["classes"], sweep, trials)
    analysis = read_json(ANALYZE, "analyze") if ANALYZE.is_file() else None
    synthesis = read_json(SYNTHESIS, "synthesize") if SYNTHESIS.is_file() else None
    if analysis and ERROR_GALLERY.is_file():
        figures["error_gallery"] = ERROR_GALLERY.read_bytes()
    comparisons = read_json(COMPARE, "compare") if COMPARE.is_file() else None
    if comparisons and COMPARE_FIGURE.is_file():
        figures["compare"] = COMPARE_FIGURE.read_bytes()
    training = read_json(TRAINING, "train") if TRAINING.is_file() else None
    sources = sorted({source for sizes in split["sizes_by_source"].values() for source in sizes})
    html = report.render_strategy_report(
        {
            "diagnosis": found,
            "evaluation": evaluation,
            "split": split,
            "improve": improve,
            "sweep": sweep,
            "analysis": analysis,
            "synthesis": synthesis,
            "comparisons": comparisons,
            "training": training,
            "sources": sources,
            "validation": read_json(VALIDATION, "validate"),
            "tolerance": params.diagnose.tolerance,
            "knobs": diagnosis.KNOBS,
            "train_params": runs.flatten(params.train.to_dict()),
            "notes": notes_for(found, split, params),
            "figures": figures,
        }
    )
    write_text(REPORT, html)
    run_id = log_to_mlflow(
        params,
        found,
        evaluation,
        split,
        improve,
        history,
        figures,
        sweep,
        analysis,
        synthesis,
        comparisons,
        training,
    )
    version = register_model(params, run_id)
    get_run_logger().info(
        "report: %s; MLflow run %s (`make ui` to compare runs); model '%s' version %s is the %s "
        "(`mlstrategy promote` makes it the %s)",
        REPORT,
        run_id,
        params.mlflow.registered_model,
        version,
        registry.CHALLENGER,
        registry.CHAMPION,
    )
    return {"report": str(REPORT), "mlflow_run_id": run_id, "model_version": version}


@task(cache_policy=NO_CACHE)
def register_model(params: Params, run_id: str) -> str:
    """The pipeline's model (the improve stage's) as the registry's challenger: raw rows in, the user's
    labels out, its signature from the train split's rows."""
    train = read_frame(split_path("train", synthesized=False), "split")
    schema = registry.serving_schema(params.data, train, classes(params.data))
    return registry.register(
        params.mlflow.experiment, params.mlflow.registered_model, run_id, IMPROVED_MODEL, schema, train
    )

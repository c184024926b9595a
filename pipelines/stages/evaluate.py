"""Stage `evaluate`: errors on every split, the optimizing metric on dev, and the satisficing measures
measured for real on the saved model (p95 latency of one-example predictions, size on disk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components import training
from components.columns import decode_labels
from components.evaluation import evaluate_predictions, satisficing
from components.train_dev import SPLITS
from components.training import predict_classes
from pipelines.errors import UserError
from pipelines.shared.measure import BYTES_PER_MB, latency_of
from pipelines.store.artifacts import (
    CONFUSION_DEV,
    EVALUATION,
    MODEL,
    require,
    write_frame,
    write_json,
)
from pipelines.store.params import Params
from pipelines.store.tables import classes as class_list
from pipelines.store.tables import read_splits


@task(cache_policy=NO_CACHE)
def load_model():
    return training.load_model(require(MODEL, "train"))


@task(cache_policy=NO_CACHE)
def predict(model, x: Any) -> np.ndarray:
    return predict_classes(model, x)


@task(cache_policy=NO_CACHE)
def measure_latency(model, x: Any, calls: int, batch_size: int = 1) -> float:
    return latency_of(model, x, calls, batch_size)


@flow(name="evaluate")
def evaluate_flow(params: Params) -> dict:
    logger = get_run_logger()
    data, options = params.data, params.evaluate
    # A pipeline without train_dev (or test) has no arrays, and no error, there.
    frames, arrays = read_splits(data, SPLITS)
    model = load_model()
    labels = class_list(data)
    classes = len(labels)
    if int(model.output_shape[-1]) != classes:
        raise UserError(
            f"{MODEL} answers {int(model.output_shape[-1])} classes, the class list has {classes} "
            "(params.yaml data.labels): rerun `dvc repro` (the model was trained on another class list)"
        )
    found, predicted = {}, {}
    for name, (x, y) in arrays.items():
        weights = frames[name][data.weight_column].to_numpy(np.float64) if data.weight_column else None
        predicted[name] = predict(model, x)
        found[name] = evaluate_predictions(y, predicted[name], classes, weights, alpha=params.diagnose.alpha)
    optimizing = options.optimizing_metric
    x_dev, y_dev = arrays["dev"]
    measures = {
        "latency_p95_ms": measure_latency(model, x_dev, options.latency_calls),
        "latency_p95_ms_batch": measure_latency(
            model, x_dev, options.latency_calls, options.serving_batch_size
        ),
        "model_size_mb": MODEL.stat().st_size / BYTES_PER_MB,
        "n_parameters": float(model.count_params()),
    }
    metrics = {metric: {s: found[s][metric]["value"] for s in found} for metric in found["dev"]}
    summary = {
        "errors": {name: found[name]["error"]["value"] if name in found else None for name in SPLITS},
        "optimizing": {
            "name": optimizing,
            "dev": found["dev"][optimizing]["value"],
            "interval": [found["dev"][optimizing]["low"], found["dev"][optimizing]["high"]],
            "higher_is_better": params.evaluate.higher_is_better,
        },
        "satisficing": satisficing(measures, options.satisficing),
        "measures": measures,
        "metrics": metrics,
        "intervals": {m: {s: [found[s][m]["low"], found[s][m]["high"]] for s in found} for m in metrics},
        "sizes": {name: len(frames[name]) for name in SPLITS},
        "n_classes": classes,
        "classes": [str(label) for label in labels],
        "n_parameters": int(model.count_params()),
        "serving_batch_size": options.serving_batch_size,
    }
    # The classes as the user names them: DVC's confusion plot and the report show these.
    names = decode_labels(np.arange(classes), labels).astype(str)
    write_frame(CONFUSION_DEV, pd.DataFrame({"actual": names[y_dev], "predicted": names[predicted["dev"]]}))
    write_json(EVALUATION, summary)
    logger.info(
        "errors %s; %s on dev %.4f; satisficing %s",
        {k: round(v, 4) for k, v in summary["errors"].items() if v is not None},
        optimizing,
        summary["optimizing"]["dev"],
        {
            k: (round(v["value"], 3), "met" if v["met"] else "NOT met")
            for k, v in summary["satisficing"].items()
        },
    )
    return summary

"""Stage `evaluate`: errors on every split, the optimizing metric on dev, and the satisficing measures
measured for real on the saved model (p95 latency of one-example predictions, size on disk)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.evaluation import OPTIMIZING_METRICS, error_rate, latency_p95_ms, satisficing
from components.train_dev import SPLITS
from pipelines.artifacts import (
    CONFUSION_DEV,
    EVALUATION,
    MODEL,
    read_frame,
    require,
    split_path,
    write_frame,
    write_json,
)
from pipelines.params import Params
from pipelines.tables import feature_columns, xy

BYTES_PER_MB = 1_000_000


@task(cache_policy=NO_CACHE)
def load_model():
    import keras

    # compile=False: predicting needs no optimizer, so no custom schedule has to be registered.
    return keras.saving.load_model(require(MODEL, "train"), compile=False, safe_mode=True)


@task(cache_policy=NO_CACHE)
def predict(model, x: np.ndarray) -> np.ndarray:
    return np.argmax(model.predict(x, batch_size=1024, verbose=0), axis=1)


@task(cache_policy=NO_CACHE)
def measure_latency(model, x: np.ndarray, calls: int) -> float:
    def predict_one(i: int) -> None:
        model.predict_on_batch(x[i % len(x) : i % len(x) + 1])

    return latency_p95_ms(predict_one, n_calls=calls)


@flow(name="evaluate")
def evaluate_flow(params: Params) -> dict:
    logger = get_run_logger()
    frames = {name: read_frame(split_path(name), "split") for name in SPLITS}
    features = feature_columns(frames["train"], params.data)
    model = load_model()
    classes = int(model.output_shape[-1])
    errors, metrics, arrays, predicted = {}, {name: {} for name in OPTIMIZING_METRICS}, {}, {}
    for name, frame in frames.items():
        if frame.empty:  # a pipeline without train_dev (or test) has no error there
            errors[name] = None
            continue
        arrays[name] = x, y = xy(frame, params.data, features)
        predicted[name] = predict(model, x)
        errors[name] = error_rate(y, predicted[name])
        for metric, function in OPTIMIZING_METRICS.items():
            metrics[metric][name] = function(y, predicted[name], classes)
    x_dev, y_dev = arrays["dev"]
    optimizing = params.evaluate.optimizing_metric
    measures = {
        "latency_p95_ms": measure_latency(model, x_dev, params.evaluate.latency_calls),
        "model_size_mb": MODEL.stat().st_size / BYTES_PER_MB,
    }
    summary = {
        "errors": errors,
        "optimizing": {"name": optimizing, "dev": metrics[optimizing]["dev"]},
        "satisficing": satisficing(measures, params.evaluate.satisficing),
        "metrics": metrics,
        "n_classes": classes,
        "n_parameters": int(model.count_params()),
    }
    write_frame(CONFUSION_DEV, pd.DataFrame({"actual": y_dev, "predicted": predicted["dev"]}))
    write_json(EVALUATION, summary)
    logger.info(
        "errors %s; %s on dev %.4f; satisficing %s",
        {k: round(v, 4) for k, v in errors.items() if v is not None},
        optimizing,
        summary["optimizing"]["dev"],
        {
            k: (round(v["value"], 3), "met" if v["met"] else "NOT met")
            for k, v in summary["satisficing"].items()
        },
    )
    return summary

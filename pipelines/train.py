"""Stage `train`: fit the Keras model on the train split; save models/model.keras and its learning curves."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task

from components.training import TrainConfig, train
from pipelines.artifacts import MODEL, TRAIN_HISTORY, atomic_output, write_frame
from pipelines.params import Params
from pipelines.tables import n_classes, read_splits


@task
def fit(config: TrainConfig, x: np.ndarray, y: np.ndarray, classes: int, dev: tuple[np.ndarray, np.ndarray]):
    # Keras' progress bar on a terminal; nothing when the output goes to a log.
    return train(config, x, y, classes, validation=dev, verbose=1 if sys.stdout.isatty() else 0)


@flow(name="train")
def train_flow(params: Params) -> dict:
    logger = get_run_logger()
    frames, arrays = read_splits(params.data, ("train", "dev"))
    x, y = arrays["train"]
    classes = n_classes(params.data, frames["train"], frames["dev"])
    logger.info(
        "training on %d examples x %d features, %d classes, %d epochs",
        len(x),
        x.shape[1],
        classes,
        params.train.epochs,
    )
    model, history = fit(params.train, x, y, classes, arrays["dev"])
    with atomic_output(MODEL) as tmp:
        model.save(tmp)
    curves = pd.DataFrame({"epoch": np.arange(1, len(history["loss"]) + 1), **history})
    curves["train_error"] = 1 - curves["accuracy"]
    if "val_accuracy" in curves:
        curves["dev_error"] = 1 - curves["val_accuracy"]
    write_frame(TRAIN_HISTORY, curves)
    final = {name: values[-1] for name, values in history.items()}
    logger.info("after %d epochs: %s", len(history["loss"]), final)
    return final

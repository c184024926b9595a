"""Stage `train`: fit the Keras model on the train split; save models/model.keras, its learning curves and
metrics/train.json (the family, its size, the device it trained on, precision, XLA, examples per second)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task

from components.columns import category_counts, n_rows, unusable_columns
from components.config import TrainConfig
from components.models import count_flops
from components.training import accelerators, train
from pipelines.errors import UserError
from pipelines.store.artifacts import (
    BACKUP_DIR,
    MODEL,
    TRAIN_HISTORY,
    TRAINING,
    atomic_output,
    data_version,
    fingerprint,
    write_frame,
    write_json,
)
from pipelines.store.params import Params
from pipelines.store.tables import classes, read_splits


@task
def fit(
    config: TrainConfig,
    x: np.ndarray,
    y: np.ndarray,
    classes: int,
    dev: tuple[np.ndarray, np.ndarray],
    backup_dir: Path,
):
    # Keras' progress bar on a terminal; nothing when the output goes to a log.
    verbose = 1 if sys.stdout.isatty() else 0
    return train(config, x, y, classes, validation=dev, verbose=verbose, backup_dir=backup_dir)


def table_warnings(params: Params, x: dict | np.ndarray) -> list[str]:
    """What the model makes of a table's columns that a person should know: columns with nothing to
    learn on train (left out), categories beyond train.tabular.max_categories (sharing one bucket)."""
    kinds = params.data.kinds
    if not kinds:
        return []
    found = [f"column {c!r} is left out of the model: {why}" for c, why in unusable_columns(x, kinds).items()]
    limit = params.train.tabular.max_categories
    for column, count in category_counts(x, kinds).items():
        if count > limit:
            found.append(
                f"column {column!r} has {count:,} categories on train: the model keeps the {limit:,} most "
                "frequent, the others share the out-of-vocabulary bucket (train.tabular.max_categories; or "
                f"data.features.{column}: text or ignore)"
            )
    return found


def checkpoint_for(config: TrainConfig) -> tuple[Path, int]:
    """The folder of this config's checkpoint on this data, and the epochs it already holds (0: a fresh
    start). A checkpoint resumes only the same config on the same data; others' leftovers are cleared."""
    key = fingerprint(config.to_dict(), data_version())
    for stale in BACKUP_DIR.glob("*"):
        if stale.name != key:
            shutil.rmtree(stale, ignore_errors=True)
    metadata = BACKUP_DIR / key / "training_metadata.json"  # BackupAndRestore's own record
    done = json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0
    return BACKUP_DIR / key, int(done)


@flow(name="train")
def train_flow(params: Params) -> dict:
    import keras

    logger = get_run_logger()
    _, arrays = read_splits(params.data, ("train", "dev"))
    x, y = arrays["train"]
    labels = classes(params.data)
    for warning in table_warnings(params, x):
        logger.warning(warning)
    devices = accelerators() or ["cpu"]
    logger.info(
        "training on %d examples, %d classes, %d epochs, on %s (Keras backend %s)",
        n_rows(x),
        len(labels),
        params.train.epochs,
        ", ".join(devices),
        keras.backend.backend(),
    )
    started = time.perf_counter()
    backup_dir, done = checkpoint_for(params.train)
    if done:
        logger.info("resuming from the checkpoint after epoch %d (%s)", done, backup_dir)
    try:
        model, history = fit(params.train, x, y, len(labels), arrays["dev"], backup_dir)
    except ValueError as error:  # a model config that does not fit the data: Keras names the layer
        raise UserError(f"params.yaml train: the model does not fit the data: {error}") from None
    seconds = time.perf_counter() - started
    with atomic_output(MODEL) as tmp:
        model.save(tmp)
    epochs = len(history["loss"])
    curves = pd.DataFrame({"epoch": np.arange(done + 1, done + epochs + 1), **history})
    curves["train_error"] = 1 - curves["accuracy"]
    if "val_accuracy" in curves:
        curves["dev_error"] = 1 - curves["val_accuracy"]
    write_frame(TRAIN_HISTORY, curves)
    summary = {
        "family": model.name,
        "parameters": int(model.count_params()),
        "flops_per_example": count_flops(model),
        "devices": devices,
        "backend": keras.backend.backend(),
        "dtype_policy": next(
            layer.dtype_policy.name for layer in model._flatten_layers() if layer.name == "dense_0"
        ),
        "jit_compile": bool(model.jit_compile),
        "epochs": epochs,
        "seconds": round(seconds, 3),
        "examples_per_second": round(n_rows(x) * epochs / seconds, 1),
    }
    write_json(TRAINING, summary)
    final = {name: values[-1] for name, values in history.items()}
    logger.info("after %d epochs: %s; %s", epochs, final, summary)
    return final

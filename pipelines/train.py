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

from components.models import count_flops
from components.sweep import fingerprint
from components.training import TrainConfig, accelerators, train
from pipelines.artifacts import (
    BACKUP_DIR,
    MODEL,
    TRAIN_HISTORY,
    TRAINING,
    atomic_output,
    data_version,
    write_frame,
    write_json,
)
from pipelines.errors import UserError
from pipelines.params import Params
from pipelines.tables import n_classes, read_splits


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
    frames, arrays = read_splits(params.data, ("train", "dev"))
    x, y = arrays["train"]
    classes = n_classes(params.data, frames["train"], frames["dev"])
    devices = accelerators() or ["cpu"]
    logger.info(
        "training on %d examples, %d classes, %d epochs, on %s (Keras backend %s)",
        len(x),
        classes,
        params.train.epochs,
        ", ".join(devices),
        keras.backend.backend(),
    )
    started = time.perf_counter()
    backup_dir, done = checkpoint_for(params.train)
    if done:
        logger.info("resuming from the checkpoint after epoch %d (%s)", done, backup_dir)
    try:
        model, history = fit(params.train, x, y, classes, arrays["dev"], backup_dir)
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
        "dtype_policy": model.get_layer("dense_0").dtype_policy.name,
        "jit_compile": bool(model.jit_compile),
        "epochs": epochs,
        "seconds": round(seconds, 3),
        "examples_per_second": round(len(x) * epochs / seconds, 1),
    }
    write_json(TRAINING, summary)
    final = {name: values[-1] for name, values in history.items()}
    logger.info("after %d epochs: %s; %s", epochs, final, summary)
    return final

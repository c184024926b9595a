"""Stage `compare`: course 3's three questions about how to learn from the data, each answered by training.

- End to end or a pipeline: the configured network on the raw inputs against hand-designed features and a
  logistic regression, over growing shares of the train split; which wins at your training size.
- Transfer learning: a model pre-trained on train's other sources (or the `.keras` file, registered model
  or local keras-hub preset directory you name) fine-tuned on the target source's training examples,
  against training from scratch, over growing target sizes; the size from which transfer stops helping.
- Multi-task learning: one network for several binary labels with missing ones skipped in the loss,
  against one network per label (the digits demo: even, greater than five, has a loop).

Writes metrics/compare.json, the curves as metrics/compare_*.csv (DVC plots) and reports/compare.png.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger

from components import end_to_end, multitask, transfer
from components.columns import take
from components.report import compare_figure, png_bytes
from components.training import load_model, train
from pipelines.errors import UserError
from pipelines.store.artifacts import (
    COMPARE,
    COMPARE_END_TO_END,
    COMPARE_FIGURE,
    COMPARE_TRANSFER,
    atomic_output,
    write_frame,
    write_json,
)
from pipelines.store.params import Params
from pipelines.store.tables import classes as class_list
from pipelines.store.tables import read_splits

if TYPE_CHECKING:
    import keras


def sizes_of(shares: list[float], available: int) -> list[int]:
    """Training sizes from shares of the available examples, distinct, at least 10 each."""
    return sorted({max(min(10, available), round(share * available)) for share in shares})


def source_model(params: Params, x_source: np.ndarray, y_source: np.ndarray, classes: int) -> keras.Model:
    """The model transfer starts from: the named .keras file, registered model or local keras-hub preset
    directory (a backbone, which gets the project's head), else one pre-trained on the non-target sources
    with the train config. A preset name is not a directory here and is refused: nothing is downloaded."""
    named = params.compare.transfer_source
    if named is None:
        if not len(y_source):
            raise UserError(
                "compare.transfer: train has no examples outside data.target_sources to pre-train on"
            )
        model, _ = train(params.train, x_source, y_source, classes)
        return model
    if named.startswith("models:/"):
        from pipelines.tracking import registry

        name, _, version = named.removeprefix("models:/").partition("/")
        with tempfile.TemporaryDirectory() as tmp:
            return load_model(
                registry.model_file(params.mlflow.experiment, name, version or "latest", Path(tmp))
            )
    else:
        path = Path(named)
    if path.is_dir():
        try:
            return transfer.load_preset(path)
        except ValueError as error:
            raise UserError(f"params.yaml compare.transfer_source: {error}") from error
    if not path.is_file():
        raise UserError(
            f"params.yaml compare.transfer_source: no model at {named} (a .keras file, models:/NAME/VERSION "
            "or a local keras-hub preset directory; preset names are not downloaded)"
        )
    return load_model(path)


@flow(name="compare")
def compare_flow(params: Params) -> dict:
    logger = get_run_logger()
    options, data = params.compare, params.data
    frames, arrays = read_splits(data, ("train", "dev"), synthesized=False)
    (x, y), (x_dev, y_dev) = arrays["train"], arrays["dev"]
    classes = len(class_list(data))
    payload: dict = {}
    try:
        if options.end_to_end:
            sizes = sizes_of(options.sizes, len(y))
            logger.info("end to end vs pipeline at %s training examples", sizes)
            points = end_to_end.compare_end_to_end(
                params.train, (x, y), (x_dev, y_dev), classes, sizes, options.components, options.min_steps
            )
            payload["end_to_end"] = {
                "points": [asdict(p) for p in points],
                "verdict": end_to_end.verdict(points),
            }
            logger.info(payload["end_to_end"]["verdict"])
        target = (
            frames["train"][data.source_column].astype(str).isin(data.target_sources).to_numpy()
            if data.source_column
            else np.zeros(len(y), bool)
        )
        if options.transfer and not (target.any() and (options.transfer_source or (~target).any())):
            logger.info("transfer skipped: train needs target-source examples and a source to pre-train on")
        elif options.transfer:
            source = source_model(params, take(x, ~target), y[~target], classes)
            sizes = sizes_of(options.sizes, int(target.sum()))
            logger.info("transfer vs scratch at %s target examples", sizes)
            points = transfer.compare_transfer(
                source,
                params.train,
                (take(x, target), y[target]),
                (x_dev, y_dev),
                classes,
                sizes,
                options.freeze,
                options.small_target,
                options.min_steps,
            )
            stops = transfer.transfer_stops_helping(points)
            payload["transfer"] = {
                "points": [asdict(p) for p in points],
                "source": options.transfer_source
                or f"pre-trained on {int((~target).sum())} non-target examples",
                "stops_helping_at": stops,
            }
            logger.info("transfer stops helping at %s target examples", stops)
        if options.multitask is True and classes != 10:
            raise UserError(
                "compare.multitask: the demo's tasks (even, > 5, has a loop) need the 10 digit classes"
            )
        if options.multitask is True or (options.multitask == "auto" and data.path is None):
            train_tasks, names = multitask.digit_attributes(y)
            dev_tasks, _ = multitask.digit_attributes(y_dev)
            hidden = multitask.hide_labels(train_tasks, options.missing_share, params.train.seed)
            result = multitask.compare_multitask(params.train, x, hidden, x_dev, dev_tasks, names)
            payload["multitask"] = {**result.to_dict(), "missing_share": options.missing_share}
            logger.info("multi-task %s", payload["multitask"])
    except ValueError as error:
        raise UserError(f"compare: {error}") from error
    write_json(COMPARE, payload)
    # DVC expects every declared output: a comparison turned off leaves a header-only table.
    for path, key, columns in (
        (COMPARE_END_TO_END, "end_to_end", ["train_size", "end_to_end_error", "pipeline_error"]),
        (COMPARE_TRANSFER, "transfer", ["target_size", "scratch_error", "transfer_error"]),
    ):
        write_frame(path, pd.DataFrame(payload[key]["points"] if key in payload else [], columns=columns))
    with atomic_output(COMPARE_FIGURE) as tmp:
        tmp.write_bytes(png_bytes(compare_figure(payload)))
    return payload

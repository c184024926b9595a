"""Stage `analyze`: error analysis of the dev set, as the seeds do it by hand. Every misclassified dev
example is tagged (confusion pair, low confidence, source, image content, the data's own tag columns); the
tags are counted with the ceiling each offers; likely wrong labels are ranked by confident learning on
out-of-sample probabilities (train by K-fold, dev and test by the trained model, which never saw them).

Writes metrics/analyze.json, reports/error_analysis.csv, reports/dev_errors.csv (a sample of the errors and
of the right answers, for a person to look at), reports/relabel_queue.csv and reports/error_gallery.png.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger

from components import error_analysis
from components.columns import label_names, take
from components.report import error_gallery_figure, error_table_figure, png_bytes
from components.training import load_model, predict_probabilities, train
from pipelines.errors import UserError
from pipelines.store.artifacts import (
    ANALYZE,
    ERROR_GALLERY,
    ERROR_SAMPLE,
    ERROR_TABLE,
    MODEL,
    RELABEL_QUEUE,
    atomic_output,
    require,
    split_path,
    write_frame,
    write_json,
)
from pipelines.store.params import Params
from pipelines.store.tables import as_images, classes, read_splits

TEXT_SHOWN = 300  # characters of a text kept in metrics/analyze.json and the report


def dev_tags(
    params: Params,
    dev: pd.DataFrame,
    dev_xy: tuple[Any, np.ndarray],
    x_train: Any,
    probabilities: np.ndarray,
    names: np.ndarray,
) -> pd.DataFrame:
    """One row per dev example: the tags error analysis counts. names: (classes,) the classes as the
    user writes them."""
    data, options = params.data, params.analyze
    x_dev, y = dev_xy
    tags = pd.DataFrame(
        {
            "confusion": error_analysis.confusion_pairs(
                names[y], names[probabilities.argmax(axis=1)]
            ).to_numpy(),
            "low_confidence": error_analysis.low_confidence(probabilities, options.low_confidence),
        }
    )
    if data.source_column:
        tags["source"] = dev[data.source_column].astype(str).to_numpy()
    if data.image_shape:
        content = error_analysis.image_tags(
            as_images(x_dev, data), as_images(x_train, data), options.tag_quantile
        )
        tags = pd.concat([tags, content], axis=1)
    elif data.text_column:
        content = error_analysis.text_tags(x_dev, x_train, options.tag_quantile)
        tags = pd.concat([tags, content], axis=1)
    elif data.kinds:
        tags = pd.concat([tags, error_analysis.slice_tags(x_dev, x_train, data.kinds)], axis=1)
    for column in data.tag_columns:
        tags[column] = dev[column].astype("string").fillna("").to_numpy()
    return tags


def train_probabilities(params: Params, x: Any, y: np.ndarray, classes: int) -> np.ndarray:
    """Out-of-fold probabilities on train: the train config fitted on K-1 folds, scoring the last."""

    def fit_predict(x_fit: Any, y_fit: np.ndarray, x_held_out: Any) -> np.ndarray:
        model, _ = train(params.train, x_fit, y_fit, classes)
        return predict_probabilities(model, x_held_out)

    return error_analysis.out_of_fold_probabilities(
        fit_predict, x, y, params.analyze.label_folds, params.analyze.seed
    )


def relabel_queue(
    params: Params, frames: dict, arrays: dict, probabilities: dict, names: np.ndarray
) -> pd.DataFrame:
    """Likely wrong labels of each split, likeliest first within a split: id, split, the given label, the
    model's label (both as the user names the classes), the probability it gives the given one, and an
    empty `corrected` column for the person who reviews them (`mlstrategy relabel` reads it back)."""
    data, rows = params.data, []
    for name, found in probabilities.items():
        labels = arrays[name][1]
        for rank, i in enumerate(error_analysis.label_issues(labels, found), 1):
            rows.append(
                {
                    "split": name,
                    "rank": rank,
                    "id": frames[name][data.id_column].iloc[i],
                    "label": names[labels[i]],
                    "suggested": names[found[i].argmax()],
                    "p_label": float(found[i, labels[i]]),
                    "corrected": None,
                }
            )
    columns = ["split", "rank", "id", "label", "suggested", "p_label", "corrected"]
    return pd.DataFrame(rows, columns=columns)


def looked_at(
    params: Params,
    dev: pd.DataFrame,
    flags: pd.DataFrame,
    probabilities: np.ndarray,
    wrong: np.ndarray,
    flagged: np.ndarray,
    labels: np.ndarray,
    names: np.ndarray,
) -> pd.DataFrame:
    """A random sample of the misclassified dev examples and as many classified right, with their tags
    (`flags`, one bool column each) and whether their label looks wrong (`flagged`, (n,) bool): the right
    answers catch wrong labels the model agreed with."""
    data, options = params.data, params.analyze
    rng = np.random.default_rng(options.seed)
    picked = []
    for right in (False, True):
        pool = np.flatnonzero(wrong != right)
        picked.extend(rng.choice(pool, size=min(options.sample, len(pool)), replace=False).tolist())
    return pd.DataFrame(
        {
            "id": dev[data.id_column].to_numpy()[picked],
            "correct": ~wrong[picked],
            "label": names[labels[picked]],
            "predicted": names[probabilities[picked].argmax(axis=1)],
            "confidence": probabilities[picked].max(axis=1),
            "likely_label_error": flagged[picked],
            "tags": [", ".join(flags.columns[flags.iloc[i].to_numpy()]) for i in picked],
        }
    )


@flow(name="analyze")
def analyze_flow(params: Params) -> dict:
    logger = get_run_logger()
    data, options = params.data, params.analyze
    # The real train examples: synthesized copies would leak across the K folds and are not relabelable.
    frames, arrays = read_splits(data, ("train", "dev", "test"), synthesized=False)
    dev = frames["dev"]
    if dev.empty:
        raise UserError(f"{split_path('dev')}: no dev examples to analyze")
    missing = [c for c in data.tag_columns if c not in dev.columns]
    if missing:
        raise UserError(f"params.yaml data.tag_columns: {missing} are not columns of {split_path('dev')}")
    model = load_model(require(MODEL, "train"))
    names = np.asarray(label_names(classes(data)), dtype=object)
    probabilities = {
        name: predict_probabilities(model, arrays[name][0]) for name in ("dev", "test") if name in arrays
    }
    # Tags first: a bad image_shape is refused before the K-fold training.
    tags = dev_tags(params, dev, arrays["dev"], arrays["train"][0], probabilities["dev"], names)
    if options.label_folds:
        logger.info("out-of-fold probabilities on train: %d folds", options.label_folds)
        probabilities["train"] = train_probabilities(params, *arrays["train"], len(names))

    y_dev = arrays["dev"][1]
    wrong = probabilities["dev"].argmax(axis=1) != y_dev
    table = error_analysis.tag_table(tags, wrong)
    queue = relabel_queue(params, frames, arrays, probabilities, names)
    dev_flagged = dev[data.id_column].isin(queue.loc[queue["split"] == "dev", "id"]).to_numpy()
    flags = _flags(tags)
    sample = looked_at(params, dev, flags, probabilities["dev"], wrong, dev_flagged, y_dev, names)

    write_frame(ERROR_TABLE, table)
    write_frame(ERROR_SAMPLE, sample)
    write_frame(RELABEL_QUEUE, queue)
    # The worst errors: least probability on the true label.
    worst = np.flatnonzero(wrong)[np.argsort(probabilities["dev"][wrong, y_dev[wrong]])][: options.gallery]
    worst_rows = [
        {
            "id": str(dev[data.id_column].iloc[i]),
            "label": names[y_dev[i]],
            "predicted": names[probabilities["dev"][i].argmax()],
            "p_label": round(float(probabilities["dev"][i, y_dev[i]]), 3),
            "tags": list(flags.columns[flags.iloc[i].to_numpy()]),
            **({"text": str(arrays["dev"][0][i])[:TEXT_SHOWN]} if data.text_column else {}),
        }
        for i in worst
    ]
    errors = int(wrong.sum())
    _gallery(params, take(arrays["dev"][0], worst), worst_rows, errors)
    payload = {
        "dev_size": len(dev),
        "dev_errors": errors,
        "dev_error": errors / len(dev),
        "tags": table.head(20).to_dict("records"),
        "label_issues": {
            **{name: int((queue["split"] == name).sum()) for name in probabilities},
            "dev_share_of_errors": float((dev_flagged & wrong).sum() / max(errors, 1)),
            "dev_among_correct": int((dev_flagged & ~wrong).sum()),
        },
        "sample": {"errors": int((~sample["correct"]).sum()), "correct": int(sample["correct"].sum())},
        "worst": worst_rows,
    }
    write_json(ANALYZE, payload)
    for row in payload["tags"][:5]:
        logger.info(
            "%s: %d of %d dev errors (%.0f%%); fixing them all: dev error %.1f%% -> %.1f%%",
            row["tag"],
            row["count"],
            errors,
            100 * row["share"],
            100 * row["dev_error"],
            100 * row["ceiling"],
        )
    logger.info(
        "likely wrong labels: %s; they explain %.0f%% of the dev errors (see %s)",
        {name: payload["label_issues"][name] for name in probabilities},
        100 * payload["label_issues"]["dev_share_of_errors"],
        RELABEL_QUEUE,
    )
    return payload


def _gallery(params: Params, x_worst: Any, worst: list[dict], errors: int) -> None:
    """The worst dev errors to look at: an image grid (true -> predicted and two tags under each) for
    images, else a table (id, labels, tags, and the text for text data). Always written (a DVC output),
    saying why when it is empty."""
    if worst and params.data.image_shape:
        captions = [f"{row['label']} -> {row['predicted']}\n" + ", ".join(row["tags"][:2]) for row in worst]
        figure = error_gallery_figure(as_images(x_worst, params.data), captions)
    else:
        off = "no gallery (params.yaml analyze.gallery: 0)" if errors else "no dev errors to show"
        figure = error_table_figure(worst, empty=off)
    with atomic_output(ERROR_GALLERY) as tmp:
        tmp.write_bytes(png_bytes(figure))


def _flags(tags: pd.DataFrame) -> pd.DataFrame:
    """The tags to print beside an example: one bool column each, without the confusion pair (shown on
    its own) and without tags every dev example has (the only source of a single-source dev set)."""
    flags = error_analysis.one_hot(tags.drop(columns="confusion"))
    return flags.loc[:, ~flags.all()]

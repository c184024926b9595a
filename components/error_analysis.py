"""Error analysis, as the seeds do it by hand: take the dev examples the model got wrong, tag each one,
count the tags, and read off the ceiling each tag gives ("fixing every one of these would take dev error
from 10.0% to 9.5%"). Also the tags themselves (confusion pair, low confidence, image and text content)
and the examples whose label is likely wrong (confident learning, with cleanlab).

Pure functions on arrays and frames; no model, no files.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.columns import MISSING, input_names, n_rows, take

# The 3x3 Laplacian, applied within each image only (a leading axis of 1 keeps images apart).
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)[None]


def image_measures(images: np.ndarray) -> pd.DataFrame:
    """Per image of `images` (n, height, width), intensities in [0, 1]: sharpness (variance of the
    Laplacian; low means blurry), brightness (mean), contrast (standard deviation) and noise (standard
    deviation of what a 3x3 median filter removes)."""
    from scipy import ndimage

    images = _as_images(images)
    laplacian = ndimage.convolve(images, _LAPLACIAN, mode="nearest")
    residual = images - ndimage.median_filter(images, size=(1, 3, 3), mode="nearest")
    return pd.DataFrame(
        {
            "sharpness": laplacian.var(axis=(1, 2)),
            "brightness": images.mean(axis=(1, 2)),
            "contrast": images.std(axis=(1, 2)),
            "noise": residual.std(axis=(1, 2)),
        }
    )


def image_tags(images: np.ndarray, reference: np.ndarray, quantile: float = 0.1) -> pd.DataFrame:
    """Content tags of `images` (n, height, width), bool, one column each: blurry, dark, low_contrast
    (measure below the `quantile` of the same measure on `reference`, e.g. the train images) and noisy
    (above its 1 - `quantile`)."""
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile must be in (0, 0.5), got {quantile}")
    found, usual = image_measures(images), image_measures(reference)
    low, high = usual.quantile(quantile), usual.quantile(1 - quantile)
    return pd.DataFrame(
        {
            "blurry": found["sharpness"] < low["sharpness"],
            "dark": found["brightness"] < low["brightness"],
            "low_contrast": found["contrast"] < low["contrast"],
            "noisy": found["noise"] > high["noise"],
        }
    )


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def text_measures(texts: Sequence[str], vocabulary: Collection[str]) -> pd.DataFrame:
    """Per text: length (in word tokens) and unknown_share (share of its tokens outside `vocabulary`,
    e.g. the words of the train texts; 0 for an empty text)."""
    known = set(vocabulary)
    tokens = [_tokens(str(text)) for text in texts]
    return pd.DataFrame(
        {
            "length": [len(words) for words in tokens],
            "unknown_share": [sum(w not in known for w in words) / max(len(words), 1) for words in tokens],
        }
    )


def text_tags(
    texts: Sequence[str], reference: Sequence[str], quantile: float = 0.1, unknown_share: float = 0.1
) -> pd.DataFrame:
    """Content tags of `texts`, bool, one column each: short and long (length below the `quantile`, above
    the 1 - `quantile` of the `reference` texts' lengths, e.g. train's) and unknown_words (more than
    `unknown_share` of its tokens never appear in the reference texts)."""
    if not 0 < quantile < 0.5:
        raise ValueError(f"quantile must be in (0, 0.5), got {quantile}")
    vocabulary = {word for text in reference for word in _tokens(str(text))}
    found = text_measures(texts, vocabulary)
    lengths = text_measures(reference, vocabulary)["length"]
    return pd.DataFrame(
        {
            "short": found["length"] < lengths.quantile(quantile),
            "long": found["length"] > lengths.quantile(1 - quantile),
            "unknown_words": found["unknown_share"] > unknown_share,
        }
    )


def slice_tags(
    x: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    bins: int = 4,
    top: int = 10,
) -> pd.DataFrame:
    """The feature slice each example of a table falls in, as error analysis counts them: per column of
    `kinds`, a category (the column holding 'Dream' for 'island=Dream'; beyond the `top` most frequent in
    `reference`, 'other'), a flag ('true', 'false'), the year of a date, or for a number which of the
    `bins` quantile bins of `reference` it is in (a bool column 'age in [20, 31)' each); a missing value
    is its own slice ('age missing'), free text only that. x, reference: a table's model inputs
    (`components.columns.model_inputs`, e.g. of dev and of train)."""
    names = input_names(c for c, k in kinds.items() if k != "ignore")
    out: dict[str, np.ndarray] = {}
    for column, name in names.items():
        kind, values = kinds[column], x[name]
        missing = values == MISSING if values.dtype.kind == "O" else np.isnan(values)
        if kind == "categorical":
            common = pd.Series(reference[name]).value_counts().drop(MISSING, errors="ignore").head(top).index
            out[column] = np.where(np.isin(values, common), values, "other").astype(object)
        elif kind == "boolean":
            out[column] = np.where(values == 1, "true", "false").astype(object)
        elif kind == "date":
            years = pd.to_datetime(np.where(missing, 0, values), unit="D").year.astype(str)
            out[column] = np.asarray(years, dtype=object)
        elif kind == "numeric":
            present = reference[name][~np.isnan(reference[name])]
            edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1))) if len(present) else []
            for low, high in itertools.pairwise(edges):
                last = high == edges[-1]
                inside = (values >= low) & ((values <= high) if last else (values < high))
                out[f"{column} in [{low:.4g}, {high:.4g}{']' if last else ')'}"] = inside & ~missing
        if kind in ("categorical", "boolean", "date"):
            out[column] = np.where(missing, "", out[column])
        out[f"{column} missing"] = missing
    frame = pd.DataFrame(out)
    return frame.loc[:, [frame[c].dtype != bool or frame[c].any() for c in frame.columns]]


def confusion_pairs(y_true: np.ndarray, y_pred: np.ndarray) -> pd.Series:
    """'true->predicted' for each misclassified example, '' for the others; y_true, y_pred (n,) int."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    pairs = pd.Series([f"{t}->{p}" for t, p in zip(y_true, y_pred, strict=True)], dtype="string")
    return pairs.where(y_true != y_pred, "")


def low_confidence(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(n,) bool: the model's top probability is below `threshold`; probabilities (n, classes)."""
    return np.asarray(probabilities).max(axis=1) < threshold


def one_hot(tags: pd.DataFrame) -> pd.DataFrame:
    """Boolean tag columns as they are; any other column (a source, a confusion pair, a user's tag) as
    one bool column per value, named 'column=value' (empty values are no tag)."""
    columns = {}
    for name in tags.columns:
        values = tags[name]
        if values.dtype == bool:
            columns[name] = values.to_numpy()
            continue
        for value in sorted(set(values.dropna().astype(str)) - {""}):
            columns[f"{name}={value}"] = (values.astype(str) == value).to_numpy()
    return pd.DataFrame(columns, index=tags.index)


def tag_table(tags: pd.DataFrame, wrong: np.ndarray) -> pd.DataFrame:
    """The error-analysis table. tags: one row per dev example (n rows), columns as `one_hot` takes them;
    wrong: (n,) bool, misclassified. One row per tag: count (misclassified examples with the tag), share
    (of all misclassified examples), ceiling (dev error if every one of them were fixed), and dev_error
    (now). Sorted by ceiling, the most promising first; tags on no error are left out."""
    wrong = np.asarray(wrong, dtype=bool)
    if len(wrong) != len(tags):
        raise ValueError(f"tags has {len(tags)} rows but wrong has {len(wrong)}")
    flags = one_hot(tags)
    errors, n = int(wrong.sum()), len(wrong)
    counts = flags[wrong].sum().astype(int)
    table = pd.DataFrame(
        {
            "tag": counts.index,
            "count": counts.to_numpy(),
            "share": counts.to_numpy() / max(errors, 1),
            "ceiling": (errors - counts.to_numpy()) / max(n, 1),
            "dev_error": errors / max(n, 1),
        }
    )
    table = table[table["count"] > 0]
    return table.sort_values(["ceiling", "tag"]).reset_index(drop=True)


def out_of_fold_probabilities(
    fit_predict: Callable[[Any, np.ndarray, Any], np.ndarray],
    x: Any,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """(n, classes) probabilities for each row of x (n, features; or a table's {input: column}) from a
    model that never saw it:
    stratified K-fold, `fit_predict(x_fit, y_fit, x_held_out)` returning (len(x_held_out), classes)."""
    from sklearn.model_selection import StratifiedKFold

    probabilities: np.ndarray | None = None
    folding = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit, held_out in folding.split(np.zeros(n_rows(x)), y):
        found = np.asarray(fit_predict(take(x, fit), y[fit], take(x, held_out)))
        if probabilities is None:
            probabilities = np.zeros((n_rows(x), found.shape[1]))
        probabilities[held_out] = found
    assert probabilities is not None
    return probabilities


def label_issues(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Indices of the examples whose given label is likely wrong, the likeliest first: confident learning
    (cleanlab's find_label_issues) on out-of-sample `probabilities` (n, classes); labels (n,) int."""
    from cleanlab.filter import find_label_issues

    # n_jobs=1: its default forks a pool, and forking a process that runs TensorFlow is unsafe.
    return find_label_issues(
        np.asarray(labels),
        np.asarray(probabilities),
        return_indices_ranked_by="self_confidence",
        n_jobs=1,
    )


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, height, width), got shape {images.shape}")
    return images

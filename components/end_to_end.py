"""End-to-end deep learning against a pipeline with hand-designed components, over growing training sizes.

The pipeline: hand-designed features (standardized PCA for rows of numbers and images, TF-IDF for text)
then a logistic regression. For a table of mixed columns, the bar a user asks about first: gradient-boosted
trees and a one-hot logistic regression (on tables, trees are the strong non-deep baseline; Grinsztajn et
al. 2022). End to end: the configured Keras network on the raw inputs. The seeds: end to end needs much
more data; hand-designed components help when data is scarce. The question to answer is "do you have
sufficient data to learn a function of the complexity needed to map x to y", at the user's own training
size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from components.columns import MAX_TREE_CATEGORIES, frame_of, input_names, n_rows, take

if TYPE_CHECKING:
    from components.config import TrainConfig


def hand_designed_pipelines(
    x: Any, kinds: Mapping[str, str] | None = None, components: int = 20, seed: int = 0
) -> dict[str, Any]:
    """{name: scikit-learn estimator} of the pipelines the network is compared with on x's kind: TF-IDF
    + logistic regression for text, standardized PCA + logistic regression for rows of numbers; for a
    table (x: {input: column}, `kinds` its columns' kinds) the non-deep baselines a user asks about
    first, gradient-boosted trees with native categories and a one-hot logistic regression, each taking
    `components.columns.frame_of(x)`."""
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(x, dict):
        return table_baselines(kinds or {}, seed)
    classifier = LogisticRegression(max_iter=2000)
    if isinstance(x, np.ndarray) and x.dtype.kind in "OUS":
        return {"tfidf_logistic_regression": make_pipeline(TfidfVectorizer(min_df=1), classifier)}
    n_components = min(components, x.shape[1], len(x))
    pca = make_pipeline(StandardScaler(), PCA(n_components, random_state=seed), classifier)
    return {"pca_logistic_regression": pca}


def table_baselines(kinds: Mapping[str, str], seed: int = 0) -> dict[str, Any]:
    """Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier: categories as its native
    categoricals, missing numbers as they are, free text as the TF-IDF of its 50 most frequent words) and a
    logistic regression (numbers median-imputed with a missing flag and standardized, categories one-hot,
    free text TF-IDF), on a table's model inputs as a frame (`components.columns.frame_of`)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

    names = input_names(c for c, k in kinds.items() if k != "ignore")
    by_kind: dict[str, list[str]] = {}
    for column, name in names.items():
        kind = "numeric" if kinds[column] in ("numeric", "boolean", "date") else kinds[column]
        by_kind.setdefault(kind, []).append(name)
    numbers, categories, texts = (
        by_kind.get("numeric", []),
        by_kind.get("categorical", []),
        by_kind.get("text", []),
    )

    def words(name: str, trees: bool) -> tuple:
        # The trees read dense columns: a text's 50 most frequent words, however few the text has.
        steps = [TfidfVectorizer(max_features=50 if trees else 1000)]
        if trees:
            steps.append(FunctionTransformer(_dense, accept_sparse=True))
        return (f"{name}.words", make_pipeline(*steps), name)

    ordinal = OrdinalEncoder(
        handle_unknown="use_encoded_value", unknown_value=np.nan, max_categories=MAX_TREE_CATEGORIES
    )
    trees = ColumnTransformer(
        [("categories", ordinal, categories), ("numbers", "passthrough", numbers)]
        + [words(name, trees=True) for name in texts]
    )
    boosted = HistGradientBoostingClassifier(
        categorical_features=list(range(len(categories))), random_state=seed
    )
    linear = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), categories),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                numbers,
            ),
        ]
        + [words(name, trees=False) for name in texts]
    )
    return {
        "gradient_boosting": make_pipeline(trees, boosted),
        "logistic_regression": make_pipeline(linear, LogisticRegression(max_iter=5000)),
    }


def _dense(x: Any) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


@dataclass(frozen=True)
class EndToEndPoint:
    """Dev error of both approaches trained on the first `train_size` examples: the network end to end
    and the best of the hand-designed pipelines (`baselines`: each one's dev error, by name)."""

    train_size: int
    end_to_end_error: float
    pipeline_error: float
    baselines: dict[str, float] = field(default_factory=dict)


def compare_end_to_end(
    config: TrainConfig,
    train_xy: tuple[Any, np.ndarray],
    dev_xy: tuple[Any, np.ndarray],
    n_classes: int,
    sizes: list[int],
    components: int = 20,
    min_steps: int = 300,
) -> list[EndToEndPoint]:
    """Both approaches at each size (a fixed random order of the training examples), scored on dev; the
    network trains for config.epochs or `min_steps` optimizer steps if that is more."""
    from components.training import predict_classes, train, with_min_steps

    x, y = train_xy
    x_dev, y_dev = dev_xy
    order = np.random.default_rng(config.seed).permutation(n_rows(x))
    points = []
    for size in sizes:
        if not 0 < size <= len(y):
            raise ValueError(f"training size {size} is not in 1..{len(y)}")
        x_size, y_size = take(x, order[:size]), y[order[:size]]
        if len(np.unique(y_size)) < 2:
            raise ValueError(f"the first {size} training examples hold one class: start from a larger size")
        model, _ = train(with_min_steps(config, size, min_steps), x_size, y_size, n_classes)
        baselines = {}
        for name, pipeline in hand_designed_pipelines(
            x_size, dict(config.columns), components, config.seed
        ).items():
            inputs = (frame_of(x_size), frame_of(x_dev)) if isinstance(x, dict) else (x_size, x_dev)
            pipeline.fit(inputs[0], y_size)
            baselines[name] = float(np.mean(pipeline.predict(inputs[1]) != y_dev))
        points.append(
            EndToEndPoint(
                train_size=size,
                end_to_end_error=float(np.mean(predict_classes(model, x_dev) != y_dev)),
                pipeline_error=min(baselines.values()),
                baselines=baselines,
            )
        )
    return points


def verdict(points: list[EndToEndPoint], margin: float = 0.0) -> str:
    """Which approach wins at the largest size tried (the user's training size), and where end to end
    overtakes the pipeline, in the seeds' words."""
    points = sorted(points, key=lambda p: p.train_size)
    last = points[-1]
    if "gradient_boosting" in last.baselines:
        return _table_verdict(last, margin)
    overtakes = next((p.train_size for p in points if p.end_to_end_error + margin < p.pipeline_error), None)
    if last.end_to_end_error + margin < last.pipeline_error:
        since = f" (from {overtakes} examples on)" if overtakes not in (None, last.train_size) else ""
        return (
            f"end to end wins at your {last.train_size} training examples{since}: "
            f"{last.end_to_end_error:.1%} dev error against {last.pipeline_error:.1%}; "
            "you have sufficient data "
            "to learn a function of the complexity needed"
        )
    return (
        f"the hand-designed pipeline wins at your {last.train_size} training examples: "
        f"{last.pipeline_error:.1%} dev error against {last.end_to_end_error:.1%} end to end; "
        "with this little "
        "data, hand-designed components still carry knowledge the network cannot learn yet"
    )


BASELINE_NAMES = {
    "gradient_boosting": "gradient-boosted trees",
    "logistic_regression": "a one-hot logistic regression",
}


def _table_verdict(last: EndToEndPoint, margin: float) -> str:
    best = min(last.baselines, key=last.baselines.__getitem__)
    others = "; ".join(
        f"{BASELINE_NAMES.get(name, name)}: {error:.1%}"
        for name, error in last.baselines.items()
        if name != best
    )
    if last.end_to_end_error + margin < last.pipeline_error:
        return (
            f"the network beats the strong non-deep baselines at your {last.train_size} training examples: "
            f"{last.end_to_end_error:.1%} dev error against {last.pipeline_error:.1%} for "
            f"{BASELINE_NAMES.get(best, best)} ({others})"
        )
    return (
        f"the network does not beat {BASELINE_NAMES.get(best, best)} at your {last.train_size} training "
        f"examples: {last.end_to_end_error:.1%} dev error against {last.pipeline_error:.1%} ({others}); on "
        "this table the non-deep model is the bar a network has to clear"
    )

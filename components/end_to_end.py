"""End-to-end deep learning against a pipeline with hand-designed components, over growing training sizes.

The pipeline: hand-designed features (standardized PCA for tables and images, TF-IDF for text) then a
logistic regression. End to end: the configured Keras network on the raw inputs. The seeds: end to end
needs much more data; hand-designed components help when data is scarce. The question to answer is
"do you have sufficient data to learn a function of the complexity needed to map x to y", at the user's
own training size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from components.training import TrainConfig


def hand_designed_pipeline(x: Any, components: int = 20, seed: int = 0) -> Any:
    """scikit-learn's features -> logistic regression: TF-IDF for text, standardized PCA otherwise."""
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(max_iter=2000)
    if isinstance(x, np.ndarray) and x.dtype.kind in "OUS":
        return make_pipeline(TfidfVectorizer(min_df=1), classifier)
    n_components = min(components, x.shape[1], len(x))
    return make_pipeline(StandardScaler(), PCA(n_components, random_state=seed), classifier)


@dataclass(frozen=True)
class EndToEndPoint:
    """Dev error of both approaches trained on the first `train_size` examples."""

    train_size: int
    end_to_end_error: float
    pipeline_error: float


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
    order = np.random.default_rng(config.seed).permutation(len(y))
    points = []
    for size in sizes:
        if not 0 < size <= len(y):
            raise ValueError(f"training size {size} is not in 1..{len(y)}")
        x_size, y_size = x[order[:size]], y[order[:size]]
        if len(np.unique(y_size)) < 2:
            raise ValueError(f"the first {size} training examples hold one class: start from a larger size")
        model, _ = train(with_min_steps(config, size, min_steps), x_size, y_size, n_classes)
        pipeline = hand_designed_pipeline(x_size, components, config.seed).fit(x_size, y_size)
        points.append(
            EndToEndPoint(
                train_size=size,
                end_to_end_error=float(np.mean(predict_classes(model, x_dev) != y_dev)),
                pipeline_error=float(np.mean(pipeline.predict(x_dev) != y_dev)),
            )
        )
    return points


def verdict(points: list[EndToEndPoint], margin: float = 0.0) -> str:
    """Which approach wins at the largest size tried (the user's training size), and where end to end
    overtakes the pipeline, in the seeds' words."""
    points = sorted(points, key=lambda p: p.train_size)
    last = points[-1]
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

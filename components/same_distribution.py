"""Do two sets come from the same distribution? Dev and test must ("dev and test from the same
distribution"); train and dev need not, and how far apart they are is an early sign of data mismatch,
before any model is trained.

Two checks: the labels (a chi-square test of the class counts) and the inputs (a domain classifier, a
quick model trained to tell the rows of one set from the other's; a cross-validated ROC AUC near 0.5 means
it cannot, i.e. the same distribution).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DomainCheck:
    """auc: cross-validated ROC AUC of the domain classifier (0.5: indistinguishable, 1: fully apart).
    p_value: one-sided, of an AUC this high if both sets came from one distribution."""

    auc: float
    p_value: float


def domain_classifier_auc(
    a: np.ndarray, b: np.ndarray, seed: int = 0, folds: int = 5, categorical: np.ndarray | None = None
) -> DomainCheck:
    """How well gradient-boosted trees tell rows of `a` (n_a, d) from rows of `b` (n_b, d), out of fold.
    categorical: (d,) bool, the columns holding category codes (NaN: missing), which the trees split as
    categories."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two 2-D arrays with the same columns, got {a.shape} and {b.shape}")
    folds = min(folds, len(a), len(b))
    if folds < 2:
        raise ValueError(f"need at least 2 rows on each side, got {len(a)} and {len(b)}")
    x, y = np.vstack([a, b]), np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=15, random_state=seed, categorical_features=categorical
    )
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, scores))
    return DomainCheck(auc=auc, p_value=auc_p_value(auc, len(a), len(b)))


def text_vectors(groups: Sequence[Sequence[str]], dims: int = 32, seed: int = 0) -> list[np.ndarray]:
    """Each group of texts as (n_group, dims + 1) numbers the domain classifier can read: character 2- to
    4-gram TF-IDF (so typos and abbreviations count, not only words) reduced by a truncated SVD fitted on
    all groups together, and the log length in words."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [str(text) for group in groups for text in group]
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, max_features=20_000)
    lengths = np.log1p([len(text.split()) for text in texts])[:, None]
    try:
        counts = tfidf.fit_transform(texts)
    except ValueError:  # no n-gram at all (every text empty): the lengths are all there is to compare
        x = lengths
    else:
        k = min(dims, counts.shape[1] - 1, len(texts) - 1)
        reduced = TruncatedSVD(k, random_state=seed).fit_transform(counts) if k >= 1 else counts.toarray()
        x = np.hstack([reduced, lengths])
    bounds = np.cumsum([0] + [len(group) for group in groups])
    return [x[a:b] for a, b in itertools.pairwise(bounds)]


def auc_p_value(auc: float, n_a: int, n_b: int) -> float:
    """P(AUC >= auc) when both sets come from one distribution: the Mann-Whitney normal approximation,
    AUC ~ N(0.5, (n_a + n_b + 1) / (12 n_a n_b))."""
    sd = math.sqrt((n_a + n_b + 1) / (12 * n_a * n_b))
    return 0.5 * math.erfc((auc - 0.5) / sd / math.sqrt(2))


def label_p_value(labels_a: np.ndarray, labels_b: np.ndarray) -> float:
    """Chi-square test that two sets share one label distribution (classes absent from both dropped)."""
    from scipy.stats import chi2_contingency

    classes = np.union1d(labels_a, labels_b)
    table = np.array([[np.sum(labels == k) for k in classes] for labels in (labels_a, labels_b)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(table).pvalue)


@dataclass(frozen=True)
class SameDistribution:
    """The two checks and the verdict. same is False when the labels differ (p < alpha) or the domain
    classifier tells the sets apart (AUC above max_auc and significantly above 0.5)."""

    domain_auc: float
    domain_p_value: float
    label_p_value: float
    same: bool

    def to_dict(self) -> dict:
        return asdict(self)


def same_distribution(
    x_a: np.ndarray,
    y_a: np.ndarray,
    x_b: np.ndarray,
    y_b: np.ndarray,
    alpha: float = 0.05,
    max_auc: float = 0.6,
    seed: int = 0,
    categorical: np.ndarray | None = None,
) -> SameDistribution:
    """Compare set a (x_a: (n_a, d) features, y_a: (n_a,) labels) with set b; `categorical` (d,) bool
    marks columns of category codes."""
    domain = domain_classifier_auc(x_a, x_b, seed=seed, categorical=categorical)
    labels = label_p_value(y_a, y_b)
    apart = domain.auc > max_auc and domain.p_value < alpha
    return SameDistribution(
        domain_auc=domain.auc,
        domain_p_value=domain.p_value,
        label_p_value=labels,
        same=bool(labels >= alpha and not apart),
    )

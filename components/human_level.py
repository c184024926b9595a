"""Human-level performance as a proxy for Bayes error.

Humans are measured at several levels (a typical human, an expert, a team of experts); the lowest error is
the best estimate of Bayes error, as in the course's medical-imaging example (3%, 1%, 0.7%, 0.5% -> 0.5%).
Levels can differ by source (people read clean scans better than blurred phone pictures), so the proxy for a
split is the proxies of its sources weighted by their share of the split.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

LEVELS = ("typical_human", "expert", "team_of_experts")
ANY_SOURCE = "all"


def bayes_proxy(levels: Mapping[str, float]) -> float:
    """The lowest human error of `levels` ({level: error}), the best estimate of Bayes error."""
    if not levels:
        raise ValueError("need at least one human-level error")
    for name, value in levels.items():
        if not 0 <= value <= 1:
            raise ValueError(f"human-level error {name} = {value} must be a fraction in [0, 1] (0.05 for 5%)")
    return min(levels.values())


def proxy_for(mix: Mapping[str, int], levels_by_source: Mapping[str, Mapping[str, float]]) -> float:
    """Bayes proxy for a split whose sources are `mix` ({source: examples}); a source without its own
    levels uses those under "all"."""
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("the split has no examples")
    weighted = 0.0
    for source, count in mix.items():
        levels = levels_by_source.get(source, levels_by_source.get(ANY_SOURCE))
        if levels is None:
            raise ValueError(f"no human-level error for source {source!r} and none under {ANY_SOURCE!r}")
        weighted += count * bayes_proxy(levels)
    return weighted / total


def from_annotators(y_true: np.ndarray, annotations: np.ndarray) -> dict[str, float]:
    """Human levels measured by annotators: y_true (n,) labels, annotations (n, a) each annotator's label.

    typical_human: the mean annotator error; expert: the best annotator's; team_of_experts: the error of
    their majority vote (ties go to the lowest label). disagreement: the share of examples on which the
    annotators do not all agree, an upper bound of what a team that discusses them would still get wrong.
    """
    y_true, annotations = np.asarray(y_true), np.asarray(annotations)
    if annotations.ndim != 2 or annotations.shape[0] != len(y_true) or annotations.shape[1] < 2:
        raise ValueError(f"need (n, a >= 2) annotations for {len(y_true)} labels, got {annotations.shape}")
    errors = (annotations != y_true[:, None]).mean(axis=0)
    n_classes = int(max(annotations.max(), y_true.max())) + 1
    votes = np.stack([(annotations == k).sum(axis=1) for k in range(n_classes)], axis=1)
    majority = votes.argmax(axis=1)
    return {
        "typical_human": float(errors.mean()),
        "expert": float(errors.min()),
        "team_of_experts": float((majority != y_true).mean()),
        "disagreement": float((annotations != annotations[:, :1]).any(axis=1).mean()),
    }

"""Artificial data synthesis for data mismatch: make training examples look like the target distribution
(the seeds' clean speech + car noise = in-car speech), and the seeds' warning with it: a small synthesis
source reused across many examples (one hour of car noise for 10,000 hours of speech) lets the model overfit
to that source while it looks fine to a person.

For images the target's degradations (blur, contrast loss, noise, shifts) are estimated from target images
and applied to non-target ones with `components.datasets.degrade`, the function that made the bundled
phone images. Pure functions on arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from components.datasets import Degradation, degrade
from components.error_analysis import image_measures

# A user's transform: (rows (n, d) or images (n, h, w), rng) -> the same shape, synthesized.
Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]

# What the estimate matches between synthesized and target images (medians, on a log scale).
_MATCHED = ("sharpness", "contrast", "noise")


def _signature(images: np.ndarray) -> np.ndarray:
    measures = image_measures(images)[list(_MATCHED)].median()
    return np.log(measures.to_numpy() + 1e-6)


def estimate_degradation(
    source: np.ndarray, target: np.ndarray, max_shift: float = 0.0, sample: int = 300, seed: int = 0
) -> Degradation:
    """The blur, contrast and noise that make `source` images (n, h, w) in [0, 1] look like `target`
    images (m, h, w): the degradation whose output matches the target's median sharpness (variance of the
    Laplacian), contrast (standard deviation) and noise (what a median filter removes), on a log scale.
    `max_shift` (pixels) is applied as given: shifts barely move those measures.

    A coarse grid, then Nelder-Mead from its best point, on a sample of `sample` images per side, with the
    same random draws for every candidate so that the objective is smooth."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    source = source[rng.permutation(len(source))[:sample]]
    target = target[rng.permutation(len(target))[:sample]]
    wanted = _signature(target)

    def bounded(z: np.ndarray) -> Degradation:
        blur, contrast, noise = z
        return Degradation(
            blur_sigma=float(np.clip(blur, 0.0, 3.0)),
            contrast=float(np.clip(contrast, 0.05, 1.0)),
            noise_std=float(np.clip(noise, 0.0, 0.5)),
            max_shift=max_shift,
        )

    def distance(z: np.ndarray) -> float:
        made = degrade(source, bounded(z), np.random.default_rng(seed))
        return float(np.sum((_signature(made) - wanted) ** 2))

    grid = [
        np.array([blur, contrast, noise])
        for blur in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
        for contrast in (0.5, 0.65, 0.8, 0.9, 1.0)
        for noise in (0.0, 0.025, 0.05, 0.1)
    ]
    start = min(grid, key=distance)
    best = minimize(
        distance, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 150}
    )
    return bounded(best.x if best.fun < distance(start) else start)


def scaled(degradation: Degradation, strength: float) -> Degradation:
    """`degradation` made `strength` times as strong (blur, noise, shift and the contrast lost; 1: as is)."""
    if strength <= 0:
        raise ValueError(f"strength must be > 0, got {strength}")
    return Degradation(
        blur_sigma=degradation.blur_sigma * strength,
        contrast=float(np.clip(1 - (1 - degradation.contrast) * strength, 0.05, 1.0)),
        noise_std=degradation.noise_std * strength,
        max_shift=degradation.max_shift * strength,
    )


@dataclass(frozen=True)
class Diversity:
    """How varied the synthesis is: the share of synthesized examples whose added pattern (synthesized
    minus original) nearly repeats another example's (cosine similarity above a threshold)."""

    repeated_share: float

    def warning(self, max_repeated_share: float) -> str | None:
        if self.repeated_share <= max_repeated_share:
            return None
        return (
            f"{self.repeated_share:.0%} of the synthesized examples repeat another's added pattern: a small "
            "synthesis source reused across many examples can make the model overfit to it while the data "
            "looks fine to you; use a bigger, more varied source"
        )


def diversity(
    original: np.ndarray, synthesized: np.ndarray, threshold: float = 0.95, sample: int = 1000, seed: int = 0
) -> Diversity:
    """Compare the added patterns (synthesized - original, rows of (n, ...) arrays) of a sample of `sample`
    examples with each other."""
    added = (np.asarray(synthesized, np.float64) - np.asarray(original, np.float64)).reshape(
        len(original), -1
    )
    rng = np.random.default_rng(seed)
    added = added[rng.permutation(len(added))[:sample]]
    norms = np.linalg.norm(added, axis=1, keepdims=True)
    unit = added / np.where(norms > 0, norms, 1.0)
    similar = unit @ unit.T > threshold
    similar |= (norms == 0) & (norms == 0).T  # examples left unchanged repeat each other trivially
    np.fill_diagonal(similar, False)
    return Diversity(repeated_share=float(similar.any(axis=1).mean()) if len(added) else 0.0)

"""The bundled default data: scikit-learn's handwritten digits as two sources of one task.

`scan` holds original images and `phone` degraded copies of the *other* half of the images, standing in
for the course's plentiful web images versus the mobile-app images the product must do well on. Because
the halves are disjoint, no image (nor a degraded copy of it) can sit in both train and dev.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

IMAGE_SIDE = 8
FEATURE_COLUMNS = tuple(f"px_{r}_{c}" for r in range(IMAGE_SIDE) for c in range(IMAGE_SIDE))


@dataclass(frozen=True)
class Degradation:
    """How a clean scan becomes a phone picture; every field is deterministic given the seed.

    blur_sigma: Gaussian blur in pixels. contrast: 1.0 keeps it, 0.5 halves the distance to the image mean.
    noise_std: Gaussian noise in units of the [0, 1] intensity range. max_shift: largest shift in pixels
    along each axis (sub-pixel shifts are interpolated bilinearly).
    """

    blur_sigma: float = 0.5
    contrast: float = 0.8
    noise_std: float = 0.05
    max_shift: float = 0.25

    def __post_init__(self) -> None:
        if self.blur_sigma < 0 or self.noise_std < 0 or self.max_shift < 0:
            raise ValueError("blur_sigma, noise_std and max_shift must be >= 0")
        if not 0 < self.contrast <= 1:
            raise ValueError(f"contrast must be in (0, 1], got {self.contrast}")


def degrade(images: np.ndarray, degradation: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Apply shift, blur, contrast loss and noise to images of shape (n, h, w) in [0, 1]; same shape out."""
    from scipy import ndimage

    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, height, width), got {images.shape}")
    shifts = rng.uniform(-degradation.max_shift, degradation.max_shift, size=(len(images), 2))
    out = np.stack(
        [
            ndimage.shift(img, shift, order=1, mode="constant", cval=0.0)
            for img, shift in zip(images, shifts, strict=True)
        ]
    )
    if degradation.blur_sigma > 0:
        out = ndimage.gaussian_filter(out, sigma=(0, degradation.blur_sigma, degradation.blur_sigma))
    mean = out.mean(axis=(1, 2), keepdims=True)
    out = mean + degradation.contrast * (out - mean)
    out = out + rng.normal(0.0, degradation.noise_std, size=out.shape)
    return np.clip(out, 0.0, 1.0)


def two_source_digits(degradation: Degradation | None = None, seed: int = 0) -> pd.DataFrame:
    """The 1,797 digits as one frame: columns id, source, label and the 64 pixels (floats in [0, 1]).

    Ids are `scan-0042` / `phone-1234`, built from the image's index in scikit-learn's bundled file, so
    they never change between runs.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    halves = {"scan": np.sort(order[: len(order) // 2]), "phone": np.sort(order[len(order) // 2 :])}
    phone_pixels = degrade(images[halves["phone"]], degradation or Degradation(), rng)
    frames = []
    for source, index in halves.items():
        pixels = images[index] if source == "scan" else phone_pixels
        frame = pd.DataFrame(pixels.reshape(len(index), -1).astype(np.float32), columns=list(FEATURE_COLUMNS))
        frame.insert(0, "label", digits.target[index].astype(np.int64))
        frame.insert(0, "source", source)
        frame.insert(0, "id", [f"{source}-{i:04d}" for i in index])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)

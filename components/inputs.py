"""Input pipelines that keep the accelerator fed without holding a dataset in memory.

`ImageFolder` streams images from `<class>/<image>` folders a batch at a time, decoded by worker threads
ahead of the training step (Keras' PyDataset: any backend). `MixedBatches` mixes pairs of training
images and their labels batch by batch (MixUp or CutMix), which needs the labels, so it cannot be a
layer of the model.

Imports Keras (and so the backend) at once: only the training path imports this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class FolderListing:
    """Every image file under a folder of class folders, with the class index of each (sorted names)."""

    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    @classmethod
    def scan(cls, root: Path) -> FolderListing:
        root = Path(root)
        classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not classes:
            raise ValueError(f"{root}: expected one folder per class with the images inside")
        numbered = all(name.isdigit() for name in classes)
        paths, labels = [], []
        for index, name in enumerate(sorted(classes, key=int) if numbered else classes):
            index = int(name) if numbered else index
            found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += found
            labels += [index] * len(found)
        return cls(paths, np.asarray(labels, np.int64), classes)


def decode(path: Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """One image as (h * w * c,) float32 in [0, 1], channels last; a file that does not decode, or is not
    of image_shape, is named."""
    from PIL import Image, UnidentifiedImageError

    channels = image_shape[2] if len(image_shape) == 3 else 1
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB" if channels == 3 else "L"), np.float32)
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None
    if pixels.shape[:2] != tuple(image_shape[:2]):
        raise ValueError(
            f"{path}: image of {pixels.shape[1]}x{pixels.shape[0]} pixels, "
            f"expected {image_shape[1]}x{image_shape[0]}"
        )
    return pixels.reshape(-1) / 255.0


class ImageFolder(keras.utils.PyDataset):
    """Batches (x (batch, h * w * c) float32, y (batch,) int) from a `FolderListing`, reshuffled every
    epoch, decoded by `workers` threads `max_queue_size` batches ahead. Rows, as the tables give: the
    image families reshape them inside the model."""

    def __init__(
        self,
        listing: FolderListing,
        image_shape: tuple[int, ...],
        batch_size: int = 64,
        seed: int = 0,
        shuffle: bool = True,
        workers: int = 4,
        max_queue_size: int = 8,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.listing, self.image_shape, self.batch_size = listing, tuple(image_shape), batch_size
        self.shuffle, self._rng = shuffle, np.random.default_rng(seed)
        self._order = np.arange(len(listing.paths))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.listing.paths) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x = np.stack([decode(self.listing.paths[i], self.image_shape) for i in rows])
        return x, self.listing.labels[rows]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._rng.shuffle(self._order)

    @property
    def labels(self) -> np.ndarray:
        return self.listing.labels

    def sample(self, n: int = 2048, seed: int = 0) -> np.ndarray:
        """(min(n, images), h * w * c): a random sample of the images, to fit input normalization on."""
        rows = np.random.default_rng(seed).permutation(len(self.listing.paths))[:n]
        return np.stack([decode(self.listing.paths[i], self.image_shape) for i in rows])


class MixedBatches(keras.utils.PyDataset):
    """Shuffled batches of (x rows, one-hot y) with MixUp (Beta(alpha, alpha) weights) or CutMix applied
    to each, picked at random per batch when both are on. x (n, h * w * c) rows of image_shape."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        n_classes: int,
        image_shape: tuple[int, int, int],
        batch_size: int,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.x, self.y = x, np.eye(n_classes, dtype=np.float32)[y]
        self.image_shape, self.batch_size = image_shape, batch_size
        self._mixers = [keras.layers.MixUp(alpha=mixup, seed=seed)] if mixup else []
        if cutmix:
            self._mixers.append(keras.layers.CutMix(factor=cutmix, seed=seed))
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(x))
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        mixer = self._mixers[int(self._rng.integers(len(self._mixers)))]
        mixed = mixer(
            {"images": self.x[rows].reshape(-1, *self.image_shape), "labels": self.y[rows]}, training=True
        )
        x = keras.ops.convert_to_numpy(mixed["images"]).reshape(len(rows), -1)
        return x, keras.ops.convert_to_numpy(mixed["labels"])

    def on_epoch_end(self) -> None:
        self._rng.shuffle(self._order)

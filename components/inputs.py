"""Input pipelines that keep the accelerator fed without holding a dataset in memory.

`ImageFolder` streams images from `<class>/<image>` folders (a `components.images.FolderListing`) a
batch at a time, decoded (`components.images.decode`) by worker threads ahead of the training step (Keras'
PyDataset: any backend). `MixedBatches` mixes pairs of training images and their labels batch by batch
(MixUp or CutMix), which needs the labels, so it cannot be a layer of the model.

Imports Keras (and so the backend) at once: only the training path imports this module. The decoder and
the folder listing live in `components.images`, which does not.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from components.images import FolderListing, decode


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

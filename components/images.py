"""Image files as pixels: the one decoder, and the numbering of class folders, shared by the table reader
(every image of a folder into one table) and the streamed input pipeline (`components.inputs.ImageFolder`).

Imports neither Keras nor the backend, so reading a folder of images stays quick to start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class BadImage(ValueError):
    """An image file that does not decode (`size` is None and `reason` says why), or that is not of the
    expected height x width (`size` is the (height, width) it has)."""

    def __init__(self, path: Path, reason: str, size: tuple[int, int] | None = None) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.size = Path(path), reason, size


def decode(path: Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """One image as (h * w * c,) float32 in [0, 1], channels last: gray for image_shape [h, w] (or
    [h, w, 1]), RGB for [h, w, 3]. Nothing is resized: a file that does not decode, or is not h x w, raises
    `BadImage` naming the file and what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    channels = image_shape[2] if len(image_shape) == 3 else 1
    if channels not in (1, 3):
        raise ValueError(f"images have 1 (gray) or 3 (RGB) channels, got image_shape {list(image_shape)}")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB" if channels == 3 else "L"), np.float32)
    except UnidentifiedImageError:
        raise BadImage(path, "not an image format Pillow reads") from None
    except (OSError, ValueError) as error:  # truncated or corrupt data, found while decoding
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise BadImage(path, first_line[:80]) from None
    height, width = image_shape[:2]
    if pixels.shape[:2] != (height, width):
        found = (pixels.shape[0], pixels.shape[1])
        raise BadImage(
            path, f"{found[0]}x{found[1]} pixels, expected {height}x{width} (height x width)", found
        )
    return pixels.reshape(-1) / 255.0


def class_numbers(names: Iterable[str]) -> dict[str, int]:
    """The class index of each class folder name: folders named 0..K-1 (all names numbers) keep their
    number; other names are numbered in sorted order, as `keras.utils.image_dataset_from_directory` does."""
    names = sorted(set(names))
    if all(name.isdecimal() for name in names):
        return {name: int(name) for name in names}
    return {name: index for index, name in enumerate(names)}


@dataclass(frozen=True)
class FolderListing:
    """Every image file under a folder of class folders (`<class>/<image>`), with the class index of each
    (`class_numbers`); classes are the folder names, sorted."""

    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    @classmethod
    def scan(cls, root: Path) -> FolderListing:
        root = Path(root)
        classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not classes:
            raise ValueError(f"{root}: expected one folder per class with the images inside")
        numbers = class_numbers(classes)
        paths, labels = [], []
        for name in sorted(classes, key=numbers.__getitem__):
            found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            paths += found
            labels += [numbers[name]] * len(found)
        return cls(paths, np.asarray(labels, np.int64), classes)

"""Transfer learning, as the seeds put it: pre-train on task A, delete the output layer, put a randomly
initialized one for task B, then retrain the last layer only when B's data is small, or every layer
when there is a lot of it. It helps when A has much more data than B and the same input.

The source is a trained model, or a keras-hub image backbone loaded from a preset directory already on disk
(`load_preset`): that one has no task-A output layer to delete, so it gets the project's whole head (the
`hidden_units` layers and a softmax), and freezing it freezes the backbone only. Preset names and handles
are refused, never downloaded.

`compare_transfer` sets fine-tuning against training from scratch over growing target sizes and says
from which size transfer stops helping.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from components.columns import take
from components.models import build_model, channels_last, output_layer

if TYPE_CHECKING:
    import keras

    from components.config import TrainConfig

Freeze = Literal["auto", "body", "none"]
# What `Backbone.save_to_preset(folder)` writes (weights over 10 GB go to model.weights.json and shards).
PRESET_FILES = ("config.json", "metadata.json")
PRESET_WEIGHTS = ("model.weights.h5", "model.weights.json")


def load_preset(directory: str | Path) -> keras.Model:
    """The keras-hub image backbone in a local preset directory, as `Backbone.save_to_preset` writes it,
    with its weights. Only a directory on disk: a preset name ("resnet_18_imagenet") or a kaggle://, hf://
    handle, which keras-hub would download, is refused, and so is a directory missing a preset's files."""
    path = Path(directory)
    if not path.is_dir():
        raise ValueError(
            f"transfer source {str(directory)!r} is not a local keras-hub preset directory (nothing is "
            "downloaded: save the preset with backbone.save_to_preset(folder) where it can be, and name "
            "that folder)"
        )
    missing = [name for name in PRESET_FILES if not (path / name).is_file()]
    if not any((path / name).is_file() for name in PRESET_WEIGHTS):
        missing.append(PRESET_WEIGHTS[0])
    if missing:
        raise ValueError(
            f"transfer source {str(directory)!r} is not a keras-hub preset directory: {', '.join(missing)} "
            "missing (backbone.save_to_preset(folder) writes config.json, metadata.json and model.weights.h5)"
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"transfer source {str(directory)!r}: config.json is not JSON ({error})") from None
    if not isinstance(config, dict) or "registered_name" not in config:
        raise ValueError(
            f"transfer source {str(directory)!r}: config.json is not a keras-hub backbone's "
            "(backbone.save_to_preset(folder) writes one)"
        )
    import keras_hub

    # An absolute path: keras-hub looks a bare name up among its built-in presets (and downloads those)
    # before it treats it as a local directory.
    try:
        backbone = keras_hub.models.Backbone.from_preset(str(path.resolve()))
    except (OSError, TypeError, KeyError, ValueError) as error:
        raise ValueError(f"transfer source {str(directory)!r}: keras-hub cannot load it ({error})") from None
    one_image = len(backbone.inputs) == 1 and len(backbone.inputs[0].shape) == 4
    if not one_image or len(backbone.outputs) != 1 or len(backbone.outputs[0].shape) != 4:
        raise ValueError(
            f"transfer source {str(directory)!r} holds a {type(backbone).__name__}, which does not take "
            "images into feature maps (one (height, width, channels) input, one 4-D output): only such image "
            "backbones are supported"
        )
    return backbone


def is_backbone(source: keras.Model) -> bool:
    """Whether source is a keras-hub backbone (a body without a head), not a trained model."""
    hub = sys.modules.get("keras_hub")  # none can exist before keras-hub is imported
    return hub is not None and isinstance(source, hub.models.Backbone)


def replace_head(source: keras.Model, n_classes: int, seed: int = 0) -> tuple[keras.Model, list]:
    """source's body (everything up to its output layer) under a new, randomly initialized softmax, and
    the body's layers. A table model keeps its two parts (`components.models.build_model`): its
    preprocessing, and its classifier with the new softmax."""
    import keras

    from components.preprocessing import split_preprocessing

    parts = split_preprocessing(source)
    if parts is None:
        outputs = output_layer(n_classes, "softmax", seed, "target_softmax")(source.layers[-1].input)
        return keras.Model(source.input, outputs, name=f"{source.name}_transfer"), source.layers[:-1]
    preprocessing, classifier = parts
    outputs = output_layer(n_classes, "softmax", seed, "target_softmax")(classifier.layers[-1].input)
    tuned = keras.Model(classifier.input, outputs, name=classifier.name)
    raw = preprocessing.input
    model = keras.Model(raw, tuned(preprocessing(raw)), name=f"{source.name}_transfer")
    return model, [preprocessing, *tuned.layers[:-1]]


def copy_of(model: keras.Model) -> keras.Model:
    """An independent copy with the same weights and fitted state, through the .keras format: clone_model
    with set_weights leaves an adapted Normalization at its unfitted mean and variance."""
    from components.training import load_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "source.keras"
        model.save(path)
        return load_model(path)


def check_inputs(source: keras.Model, x_target: Any, image_shape: tuple[int, ...] | None = None) -> None:
    """The source model must take the target's inputs: same features per example, or for a keras-hub
    backbone the same (height, width, channels) as the target's image_shape (None in the backbone's shape
    takes any size). A table's model must take the target's columns."""
    if isinstance(x_target, dict):
        expected_columns = sorted(tensor.name for tensor in source.inputs)
        if expected_columns != sorted(x_target):
            raise ValueError(
                f"the transfer source takes the columns {expected_columns}, the target data has "
                f"{sorted(x_target)}: both tasks must have the same input (seeds)"
            )
        return
    expected = tuple(source.inputs[0].shape[1:])
    got = tuple(np.asarray(x_target).shape[1:])
    if is_backbone(source):
        if image_shape is None:
            raise ValueError(
                f"the transfer source is a keras-hub backbone that takes images of shape {list(expected)}, "
                f"but the target data has rows of {list(got)} and no image shape (set data.image_shape)"
            )
        got = channels_last(image_shape)  # whether the rows hold that many pixels: build_model says
        matches = len(expected) == len(got) and all(
            e is None or e == g for e, g in zip(expected, got, strict=True)
        )
    else:
        matches = expected == got
    if not matches:
        raise ValueError(
            f"the transfer source takes inputs of shape {list(expected)} per example, "
            "but the target data has "
            f"{list(got)}: both tasks must have the same input (seeds)"
        )


def fine_tune(
    source: keras.Model,
    config: TrainConfig,
    x_target: Any,
    y_target: np.ndarray,
    n_classes: int,
    freeze: Freeze = "auto",
    small_target: int = 1000,
    validation: tuple[Any, np.ndarray] | None = None,
) -> tuple[keras.Model, bool]:
    """A copy of source with its output layer replaced (a keras-hub backbone: with the project's whole
    head attached), trained on the target (x_target, y_target (n,)).

    freeze: body (train the new output layer only), none (every layer), or auto: the body frozen when the
    target has fewer than `small_target` examples. Returns the model and whether the body was frozen.
    A keras-hub backbone (`load_preset`) gets the project's head
    (`build_model(backbone=...)`); its body is the backbone.
    """
    from components.training import fit_new

    check_inputs(source, x_target, config.image_shape)
    frozen = freeze == "body" or (freeze == "auto" and len(y_target) < small_target)

    def build() -> keras.Model:
        if is_backbone(source):
            backbone = copy_of(source)
            model, body = build_model(config, np.asarray(x_target), n_classes, backbone=backbone), [backbone]
        else:
            model, body = replace_head(copy_of(source), n_classes, config.seed)
        if frozen:
            for layer in body:
                layer.trainable = False
        return model

    model, _ = fit_new(config, build, x_target, y_target, validation=validation)
    return model, frozen


@dataclass(frozen=True)
class TransferPoint:
    """Dev error at one target size, from scratch and by fine-tuning the source model."""

    target_size: int
    scratch_error: float
    transfer_error: float
    frozen: bool


def compare_transfer(
    source: keras.Model,
    config: TrainConfig,
    target_train: tuple[Any, np.ndarray],
    target_dev: tuple[Any, np.ndarray],
    n_classes: int,
    sizes: list[int],
    freeze: Freeze = "auto",
    small_target: int = 1000,
    min_steps: int = 300,
) -> list[TransferPoint]:
    """At each size, the first `size` target training examples (a fixed random order) trained from scratch
    and fine-tuned from source, both for config.epochs or `min_steps` optimizer steps if that is more;
    both scored on target_dev. Scratch is the configured family, or for a keras-hub backbone the same
    backbone freshly initialized under the same head, so that only the pre-training differs."""
    from components.training import fit_new, predict_classes, train, with_min_steps

    x, y = target_train
    order = np.random.default_rng(config.seed).permutation(len(y))
    x_dev, y_dev = target_dev
    points = []
    for size in sizes:
        if not 0 < size <= len(y):
            raise ValueError(f"target size {size} is not in 1..{len(y)} (the target's training examples)")
        x_size, y_size = take(x, order[:size]), y[order[:size]]
        sized = with_min_steps(config, size, min_steps)
        if is_backbone(source):
            fresh = type(source).from_config(source.get_config())
            build = partial(build_model, sized, x_size, n_classes, backbone=fresh)
            scratch, _ = fit_new(sized, build, x_size, y_size)
        else:
            scratch, _ = train(sized, x_size, y_size, n_classes)
        tuned, frozen = fine_tune(source, sized, x_size, y_size, n_classes, freeze, small_target)
        points.append(
            TransferPoint(
                target_size=size,
                scratch_error=float(np.mean(predict_classes(scratch, x_dev) != y_dev)),
                transfer_error=float(np.mean(predict_classes(tuned, x_dev) != y_dev)),
                frozen=frozen,
            )
        )
    return points


def transfer_stops_helping(points: list[TransferPoint], margin: float = 0.0) -> int | None:
    """The smallest target size from which fine-tuning is no better than scratch (by more than margin) at
    every larger size; None when transfer helps up to the largest size tried."""
    stops = None
    for point in sorted(points, key=lambda p: p.target_size, reverse=True):
        if point.transfer_error + margin < point.scratch_error:
            break
        stops = point.target_size
    return stops

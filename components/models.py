"""Model families, each built from config: an MLP for tables, a small CNN or a ResNet-style backbone for
images, a Transformer encoder for text.

The family follows the data kind unless `TrainConfig.family` names one: rows of numbers are a table, rows
with an `image_shape` are images (pixels row-major, channels last), an array of strings is text. Every
family ends in the same head: `hidden_units` Dense layers with the course-2 knobs (initializer matched to
the activation, batch norm, dropout, L2), then a softmax.

Only `keras.*` and keras-hub layers: nothing is downloaded, no preset is used. The text family learns its
WordPiece vocabulary from the training split only and keeps the tokenizer inside the model, so the saved
model takes raw strings (TensorFlow backend: tokenizing needs tensorflow-text).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from components.config import (
    DEFAULT_FAMILY,
    FAMILY_KINDS,
    Kind,
    TrainConfig,
)
from components.initializers import initializer_for, seeded_initializer

if TYPE_CHECKING:
    import keras


def data_kind(x: Any, image_shape: tuple[int, ...] | None) -> Kind:
    """text for an array of strings, image for rows with an image shape, else tabular (rows of numbers,
    or a table's {input: column} of `components.columns.model_inputs`)."""
    if isinstance(x, dict):
        return "tabular"
    if isinstance(x, np.ndarray) and x.dtype.kind in "OUS":
        return "text"
    return "image" if image_shape is not None else "tabular"


def resolve_family(config: TrainConfig, kind: Kind) -> str:
    """The configured family, or the data kind's default for `auto`; a family that cannot read the data
    kind is refused."""
    family = DEFAULT_FAMILY[kind] if config.family == "auto" else config.family
    if kind not in FAMILY_KINDS[family]:
        raise ValueError(
            f"train.family {family!r} cannot read {kind} data (it reads {' or '.join(FAMILY_KINDS[family])})"
        )
    return family


def channels_last(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(h, w) or (h, w, c) as (h, w, c)."""
    return (*image_shape, 1) if len(image_shape) == 2 else tuple(image_shape)  # type: ignore[return-value]


def build_model(
    config: TrainConfig, x_train: Any, n_classes: int, backbone: keras.Model | None = None
) -> keras.Model:
    """The family's body on x_train's kind, fitted where it learns from data (input normalization, the
    WordPiece vocabulary) on x_train only, then the shared head and a softmax over n_classes.

    x_train: (n, features) float rows, (n,) strings for text, or a table's {input name: (n, 1) column}
    (`components.columns.model_inputs` of `config.columns`: the model then takes one input per column and
    preprocesses it itself, `components.preprocessing`). With `config.image_shape`, rows hold h * w * c
    pixels; the model reshapes them, so it takes the same rows the data has. backbone: a ready image
    backbone (a keras-hub preset's, for transfer) in place of the family's convolutions.
    """
    import keras

    kind = data_kind(x_train, config.image_shape)
    family = resolve_family(config, kind)
    if backbone is not None and (kind != "image" or family == "mlp"):
        raise ValueError(
            f"an image backbone needs image data (data.image_shape) and an image family (train.family auto, "
            f"cnn or resnet), got {kind} data and {family!r}"
        )
    if kind == "text":
        inputs, x = _text_body(config, x_train)
    elif isinstance(x_train, dict):
        return _table_model(config, x_train, n_classes)
    else:
        if x_train.ndim != 2 or len(x_train) == 0:
            raise ValueError(f"x_train must have shape (n > 0, features), got {x_train.shape}")
        inputs = keras.Input(shape=(x_train.shape[1],), name="features")
        if family == "mlp":
            normalization = keras.layers.Normalization(name="input_normalization")
            normalization.adapt(x_train)
            x = normalization(inputs)
        else:
            x = _image_body(config, family, inputs, x_train, backbone)
    x = _head(config, x)
    outputs = output_layer(n_classes, "softmax", config.seed + len(config.hidden_units), "softmax")(x)
    return keras.Model(inputs, outputs, name=family)


def _table_model(config: TrainConfig, x_train: dict, n_classes: int) -> keras.Model:
    """A table's model in two parts, both fitted on x_train where they learn from data: its preprocessing
    (fixed once adapted: standardization, imputation, calendar parts, category lookups) and its classifier
    (one-hot encodings, embeddings, TF-IDF of free text, then the shared head and the softmax). The whole
    model takes the raw columns; training fits the classifier on the preprocessing's output
    (`components.training.compile_and_fit`)."""
    import keras

    from components.preprocessing import CLASSIFIER, encoded_features, table_preprocessing

    preprocessing = table_preprocessing(dict(config.columns), config.tabular, x_train)
    inputs, x = encoded_features(preprocessing, config.tabular, x_train, config.seed + 200, config.l2)
    x = _head(config, x)
    outputs = output_layer(n_classes, "softmax", config.seed + len(config.hidden_units), "softmax")(x)
    classifier = keras.Model(inputs, outputs, name=CLASSIFIER)
    raw = preprocessing.input
    return keras.Model(raw, classifier(preprocessing(raw)), name="mlp")


def output_layer(units: int, activation: str, seed: int, name: str) -> keras.layers.Dense:
    """A randomly initialized (Glorot, seeded) output layer, in float32 under mixed precision so that the
    softmax or sigmoid and the loss keep full precision."""
    import keras

    mixed = keras.config.dtype_policy().name.startswith("mixed")
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=seeded_initializer("glorot_uniform", seed),
        dtype="float32" if mixed else None,
        name=name,
    )


def _head(config: TrainConfig, x: Any) -> Any:
    import keras

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    for i, units in enumerate(config.hidden_units):
        x = keras.layers.Dense(
            units,
            kernel_initializer=seeded_initializer(initializer_for(config), config.seed + i),
            kernel_regularizer=regularizer,
            use_bias=not config.batch_norm,  # batch norm's beta replaces the bias
            name=f"dense_{i}",
        )(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = keras.layers.Activation(config.activation, name=f"{config.activation}_{i}")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, seed=config.seed + i, name=f"dropout_{i}")(x)
    return x


def _image_body(
    config: TrainConfig, family: str, inputs: Any, x_train: np.ndarray, backbone: keras.Model | None
) -> Any:
    import keras

    shape = channels_last(config.image_shape)
    if int(np.prod(shape)) != x_train.shape[1]:
        raise ValueError(
            f"image_shape {list(config.image_shape)} holds {int(np.prod(shape))} pixels, but the rows have "
            f"{x_train.shape[1]} features"
        )
    x = keras.layers.Reshape(shape, name="image")(inputs)
    augment = config.augment
    if augment.flip != "none":
        x = keras.layers.RandomFlip(augment.flip, seed=config.seed, name="flip")(x)
    if augment.rand_augment:
        x = keras.layers.RandAugment(
            value_range=(float(x_train.min()), float(x_train.max())),
            num_ops=augment.rand_augment_ops,
            factor=augment.rand_augment_factor,
            seed=config.seed,
            name="rand_augment",
        )(x)
    # Per channel, fitted on the train images only.
    normalization = keras.layers.Normalization(axis=-1, name="input_normalization")
    normalization.adapt(x_train[:50_000].reshape(-1, *shape))
    x = normalization(x)
    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    if backbone is not None:
        x = backbone(x)
    elif family == "cnn":
        side = min(shape[:2])
        for i, filters in enumerate(config.cnn.filters):
            x = keras.layers.Conv2D(
                filters,
                config.cnn.kernel_size,
                padding="same",
                kernel_initializer=seeded_initializer(initializer_for(config), config.seed + 100 + i),
                kernel_regularizer=regularizer,
                use_bias=not config.batch_norm,
                name=f"conv_{i}",
            )(x)
            if config.batch_norm:
                x = keras.layers.BatchNormalization(name=f"conv_batch_norm_{i}")(x)
            x = keras.layers.Activation(config.activation, name=f"conv_{config.activation}_{i}")(x)
            if side >= 4:
                x = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(x)
                side //= 2
    else:
        import keras_hub

        resnet = config.resnet
        x = keras_hub.models.ResNetBackbone(
            input_conv_filters=[resnet.stem_filters],
            input_conv_kernel_sizes=[3],
            stackwise_num_filters=list(resnet.filters),
            stackwise_num_blocks=list(resnet.blocks),
            stackwise_num_strides=list(resnet.strides),
            block_type=resnet.block_type,
            use_pre_activation=resnet.pre_activation,
            image_shape=shape,
            name="resnet",
        )(x)
    return keras.layers.GlobalAveragePooling2D(name="pool")(x)


def _text_body(config: TrainConfig, texts: np.ndarray) -> tuple[Any, Any]:
    import keras
    import keras_hub

    try:
        import tensorflow as tf
    except ImportError:  # keras-hub's WordPiece runs on TensorFlow Text, whatever the Keras backend
        raise ValueError(
            "the transformer family tokenizes with keras-hub's WordPieceTokenizer, which needs TensorFlow "
            "(tensorflow-text) under every Keras backend; install it, or train text where it is"
        ) from None

    text = config.text
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts.astype(str)).batch(1024),
        vocabulary_size=text.vocabulary_size,
        lowercase=text.lowercase,
    )
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        sequence_length=text.sequence_length,
        lowercase=text.lowercase,
        name="wordpiece",
    )
    inputs = keras.Input(shape=(), dtype="string", name="text")
    with warnings.catch_warnings():
        # The position embedding ignores the padding mask and says so; the token embedding's mask still
        # reaches the encoder, which is what it is for.
        warnings.filterwarnings("ignore", message=".*does not support masking.*")
        x = keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=len(vocabulary),
            sequence_length=text.sequence_length,
            embedding_dim=text.embedding_dim,
            mask_zero=True,
            name="embedding",
        )(tokenizer(inputs))
    for i in range(text.layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=text.intermediate_dim,
            num_heads=text.num_heads,
            dropout=config.dropout,
            name=f"encoder_{i}",
        )(x)
    return inputs, keras.layers.GlobalAveragePooling1D(name="pool")(x)


def count_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass of one example: 2 x the multiply-adds of the Dense
    (per token on a sequence) and convolution layers, nested backbones included; the rest (activations,
    norms, attention's score products) is left out. Backend-agnostic, for model FLOP utilisation."""
    import keras

    def positions(layer: Any, default: int) -> int:
        try:
            return int(np.prod(layer.output.shape[1:-1]))  # tokens of a sequence; 1 for rows
        except AttributeError:  # a sublayer of a layer (a Transformer block's): no symbolic output
            return default

    shapes = [getattr(layer.output, "shape", ()) for layer in model.layers]
    tokens = max((int(shape[1]) for shape in shapes if len(shape) == 3 and shape[1]), default=1)
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)):
            total += 2 * int(np.prod(layer.kernel.shape)) * positions(layer, tokens)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            out = layer.output.shape  # (None, h, w, c)
            total += 2 * int(np.prod(layer.kernel.shape)) * int(out[1]) * int(out[2])
    return total

"""The configuration of training and of each model family: frozen dataclasses, validated on creation, one
per params.yaml section under `train`. Below both `components.models` (which builds from them) and
`components.training` (which trains with them), so neither imports the other's config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Family = Literal["auto", "mlp", "cnn", "resnet", "transformer"]
Kind = Literal["tabular", "image", "text"]
DEFAULT_FAMILY: dict[str, str] = {"tabular": "mlp", "image": "cnn", "text": "transformer"}
FAMILY_KINDS: dict[str, tuple[str, ...]] = {
    "mlp": ("tabular", "image"),
    "cnn": ("image",),
    "resnet": ("image",),
    "transformer": ("text",),
}


@dataclass(frozen=True)
class CnnConfig:
    """Conv2D blocks (one per entry of `filters`), each [+ batch norm] + activation, then 2x2 max pooling
    while the image is at least 4 pixels on a side; global average pooling into the head."""

    filters: tuple[int, ...] = (16, 32)
    kernel_size: int = 3

    def __post_init__(self) -> None:
        if not self.filters or min(self.filters) <= 0:
            raise ValueError(f"cnn.filters must be positive numbers of filters, got {list(self.filters)}")
        if self.kernel_size < 1:
            raise ValueError(f"cnn.kernel_size must be >= 1, got {self.kernel_size}")


@dataclass(frozen=True)
class ResNetConfig:
    """keras-hub's ResNetBackbone from config (no preset). Basic blocks need 64 filters in the stem and the
    first stack (keras-hub checks it); bottleneck blocks take a smaller stem."""

    stem_filters: int = 64
    filters: tuple[int, ...] = (64, 128)
    blocks: tuple[int, ...] = (1, 1)
    strides: tuple[int, ...] = (1, 2)
    block_type: Literal["basic_block", "bottleneck_block", "basic_block_vd", "bottleneck_block_vd"] = (
        "basic_block"
    )
    pre_activation: bool = False

    def __post_init__(self) -> None:
        if not len(self.filters) == len(self.blocks) == len(self.strides) or not self.filters:
            raise ValueError(
                "resnet.filters, resnet.blocks and resnet.strides must have one entry per stack, got "
                f"{list(self.filters)}, {list(self.blocks)}, {list(self.strides)}"
            )
        if self.filters[0] != 64:
            raise ValueError(f"resnet.filters must start with 64 (keras-hub's ResNet), got {self.filters[0]}")
        if self.block_type.startswith("basic") and self.stem_filters != 64:
            raise ValueError(
                f"resnet.stem_filters must be 64 with {self.block_type}, got {self.stem_filters}"
            )


@dataclass(frozen=True)
class TextConfig:
    """WordPiece tokenizer (vocabulary learned on the train split) + token and position embedding +
    `layers` Transformer encoder blocks, averaged over the tokens."""

    vocabulary_size: int = 2000
    sequence_length: int = 64
    embedding_dim: int = 64
    num_heads: int = 2
    intermediate_dim: int = 128
    layers: int = 1
    lowercase: bool = True

    def __post_init__(self) -> None:
        for name in ("vocabulary_size", "sequence_length", "embedding_dim", "num_heads", "intermediate_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"text.{name} must be >= 1, got {getattr(self, name)}")
        if self.layers < 0:
            raise ValueError(f"text.layers must be >= 0, got {self.layers}")
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                f"text.embedding_dim ({self.embedding_dim}) must be a multiple of "
                f"text.num_heads ({self.num_heads})"
            )


@dataclass(frozen=True)
class TabularConfig:
    """How a table's columns are encoded inside the model (`components.preprocessing`): categories
    one-hot up to `embed_above` of them, else an embedding of `embedding_dim` (None: min(16, 1.6 k^0.56)
    for k categories); at most `max_categories` per column (the most frequent; the others share the
    out-of-vocabulary bucket); missing numbers imputed by the train split's `impute` (mean or median),
    flagged in a column of their own with `missing_indicator`; free text as a TF-IDF bag of its
    `max_tokens` most frequent words."""

    embed_above: int = 10
    embedding_dim: int | None = None
    max_categories: int = 1000
    impute: Literal["mean", "median"] = "median"
    missing_indicator: bool = True
    max_tokens: int = 1000

    def __post_init__(self) -> None:
        for name in ("embed_above", "max_categories", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"tabular.{name} must be >= 1, got {getattr(self, name)}")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ValueError(f"tabular.embedding_dim must be >= 1 or null (auto), got {self.embedding_dim}")


@dataclass(frozen=True)
class AugmentConfig:
    """Image augmentation inside the model, active only while training. Flips only where they keep the
    label (a mirrored 2 is no 2: off by default). `mixup` and `cutmix` mix pairs of training examples and
    their labels batch by batch (Beta alpha of MixUp; CutMix's factor); 0 is off."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    rand_augment: bool = False
    rand_augment_ops: int = 2
    rand_augment_factor: float = 0.5
    mixup: float = 0.0
    cutmix: float = 0.0

    def __post_init__(self) -> None:
        if self.mixup < 0 or self.cutmix < 0:
            raise ValueError(
                f"augment.mixup and augment.cutmix must be >= 0, got {self.mixup}, {self.cutmix}"
            )
        if not 0 <= self.rand_augment_factor <= 1:
            raise ValueError(f"augment.rand_augment_factor must be in [0, 1], got {self.rand_augment_factor}")

    @property
    def mixes(self) -> bool:
        return bool(self.mixup or self.cutmix)


Decay = Literal["none", "inverse_time", "exponential", "staircase", "inverse_sqrt"]
Switch = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class TrainConfig:
    """The knobs of one training run; units: learning rate per step, decay `t` in epochs."""

    seed: int = 0
    family: Family = "auto"
    cnn: CnnConfig = field(default_factory=CnnConfig)
    resnet: ResNetConfig = field(default_factory=ResNetConfig)
    text: TextConfig = field(default_factory=TextConfig)
    tabular: TabularConfig = field(default_factory=TabularConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    hidden_units: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    initializer: str = "auto"
    batch_norm: bool = False
    dropout: float = 0.0
    l2: float = 1e-4
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    rho: float = 0.9
    momentum: float = 0.9
    lr_decay: Decay = "none"
    decay_rate: float = 0.95
    decay_epochs: float = 1.0
    batch_size: int = 64
    epochs: int = 40
    early_stopping: bool = False
    patience: int = 5
    checkpoints: bool = True
    mixed_precision: Switch = "auto"
    jit_compile: Switch = "auto"
    # The data's image shape, (h, w) or (h, w, c): set from params.yaml data.image_shape, not a knob.
    image_shape: tuple[int, ...] | None = None
    # A table's (column, kind) pairs, in order: set from params.yaml data.features, not a knob.
    columns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        positive = {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "epsilon": self.epsilon,
            "decay_epochs": self.decay_epochs,
            "decay_rate": self.decay_rate,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not self.hidden_units or any(units <= 0 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be positive layer sizes, got {list(self.hidden_units)}")
        for name in ("dropout", "beta_1", "beta_2", "rho", "momentum"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.augment.mixes and self.image_shape is None:
            raise ValueError("augment.mixup and augment.cutmix mix images: set data.image_shape")
        if self.image_shape is not None and (
            len(self.image_shape) not in (2, 3) or min(self.image_shape) < 1
        ):
            raise ValueError(f"image_shape must be (h, w) or (h, w, channels), got {list(self.image_shape)}")

    def to_dict(self) -> dict[str, Any]:
        def listed(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: listed(v) for k, v in value.items()}
            return list(value) if isinstance(value, tuple) else value

        return listed(asdict(self))

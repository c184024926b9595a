"""The model families on tiny data, each knob reaching the compiled model, and the GPU switches."""

import importlib.util
import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from components.config import AugmentConfig, CnnConfig, ResNetConfig, TextConfig, TrainConfig
from components.images import FolderListing
from components.inputs import ImageFolder
from components.models import build_model, count_flops
from components.training import load_model, predict_probabilities, train

RNG = np.random.default_rng(0)
IMAGES = RNG.random((48, 64)).astype("float32")  # 8x8 gray images as rows
LABELS = (IMAGES[:, :32].mean(axis=1) > IMAGES[:, 32:].mean(axis=1)).astype("int64")
TINY = TrainConfig(hidden_units=(8,), epochs=1, batch_size=16)
WORDS = ["good", "great", "fine", "bad", "awful", "poor"]
TEXTS = np.array([f"{WORDS[i % 6]} film {WORDS[(i + 3 * (i % 2)) % 6]}" for i in range(24)], dtype=object)
TEXT_LABELS = np.array([int(i % 6 >= 3) for i in range(24)])


def layer_types(model) -> set[str]:
    return {type(layer).__name__ for layer in model._flatten_layers()}


def round_trip(model, x, tmp_path) -> None:
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_allclose(predict_probabilities(loaded, x), predict_probabilities(model, x), atol=1e-6)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (TINY, {"Dense", "Normalization"}),
        (replace(TINY, image_shape=(8, 8)), {"Conv2D", "MaxPooling2D", "Reshape"}),
        (
            replace(
                TINY,
                family="resnet",
                image_shape=(8, 8),
                resnet=ResNetConfig(filters=(64,), blocks=(1,), strides=(1,)),
            ),
            {"ResNetBackbone"},
        ),
    ],
    ids=["mlp", "cnn", "resnet"],
)
def test_each_family_trains_predicts_and_saves(config, expected, tmp_path):
    model, history = train(config, IMAGES, LABELS, 2)
    assert expected <= layer_types(model) and len(history["loss"]) == 1
    assert predict_probabilities(model, IMAGES[:5]).shape == (5, 2)
    round_trip(model, IMAGES[:5], tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_text") is None,
    reason="WordPiece needs TensorFlow Text (tensorflow-text)",
)
def test_the_text_family_learns_its_vocabulary_on_train_and_takes_raw_strings(tmp_path):
    config = replace(
        TINY,
        epochs=3,
        text=TextConfig(vocabulary_size=50, sequence_length=8, embedding_dim=8, intermediate_dim=16),
    )
    model, _ = train(config, TEXTS, TEXT_LABELS, 2)
    assert {"WordPieceTokenizer", "TransformerEncoder", "TokenAndPositionEmbedding"} <= layer_types(model)
    vocabulary = model.get_layer("wordpiece").get_vocabulary()
    assert "good" in vocabulary and "unseen" not in vocabulary
    assert predict_probabilities(model, np.array(["an unseen review"], dtype=object)).shape == (1, 2)
    # The feed-forward block alone: two 8x16 kernels at each of the 8 token positions.
    assert count_flops(model) >= 8 * 2 * (2 * 8 * 16)
    # Per token: the encoder's FLOPs grow by the same amount with each 8 more tokens; the head's do not.
    flops = [
        count_flops(build_model(replace(config, text=replace(config.text, sequence_length=n)), TEXTS, 2))
        for n in (8, 16, 24)
    ]
    assert flops[2] - flops[1] == flops[1] - flops[0] > 0 and flops[0] == count_flops(model)
    round_trip(model, TEXTS[:4], tmp_path)


@pytest.mark.parametrize(
    ("config", "x", "message"),
    [
        (replace(TINY, family="cnn"), IMAGES, "train.family 'cnn' cannot read tabular data"),
        (
            replace(TINY, image_shape=(4, 4)),
            IMAGES,
            r"image_shape \[4, 4\] holds 16 pixels, but the rows have 64",
        ),
        (replace(TINY, family="mlp"), TEXTS, "train.family 'mlp' cannot read text data"),
    ],
)
def test_a_model_that_does_not_fit_the_data_says_why(config, x, message):
    with pytest.raises(ValueError, match=message):
        build_model(config, x, 2)


def test_knobs_reach_the_compiled_model():
    import keras

    config = replace(
        TINY,
        image_shape=(8, 8),
        cnn=CnnConfig(filters=(4, 6), kernel_size=2),
        hidden_units=(7,),
        activation="tanh",
        batch_norm=True,
        dropout=0.25,
        l2=0.01,
        optimizer="sgd",
        momentum=0.8,
        learning_rate=0.05,
        lr_decay="staircase",
        batch_size=12,
        augment=AugmentConfig(flip="horizontal", rand_augment=True),
        jit_compile="on",
    )
    model, _ = train(config, IMAGES, LABELS, 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 6] and convs[0].kernel_size == (2, 2)
    dense = model.get_layer("dense_0")
    assert dense.units == 7 and isinstance(dense.kernel_initializer, keras.initializers.GlorotUniform)  # tanh
    assert dense.kernel_regularizer.l2 == pytest.approx(0.01) and not dense.use_bias
    assert model.get_layer("dropout_0").rate == 0.25
    assert {"BatchNormalization", "RandomFlip", "RandAugment"} <= layer_types(model)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.momentum == pytest.approx(
        0.8
    )
    schedule = model.optimizer._learning_rate
    assert isinstance(schedule, keras.optimizers.schedules.ExponentialDecay) and schedule.staircase
    assert schedule.decay_steps == math.ceil(48 / 12)  # the batch size sets the steps per epoch
    assert model.jit_compile is False  # RandAugment's geometric ops cannot be XLA-compiled: off, silently


def test_relu_gets_he_and_adam_gets_its_betas():
    import keras

    config = replace(TINY, optimizer="adam", beta_1=0.85, beta_2=0.99, epsilon=1e-6, jit_compile="on")
    model, _ = train(config, IMAGES, LABELS, 2)
    assert isinstance(model.get_layer("dense_0").kernel_initializer, keras.initializers.HeNormal)
    optimizer = model.optimizer
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == pytest.approx((0.85, 0.99, 1e-6))
    assert model.jit_compile is True


def test_mixed_precision_computes_in_bfloat16_with_a_float32_output():
    model, history = train(replace(TINY, mixed_precision="on"), IMAGES, LABELS, 2)
    assert model.get_layer("dense_0").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("softmax").dtype_policy.name == "float32"
    assert np.isfinite(history["loss"]).all()
    import keras

    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored


def test_mixup_and_cutmix_train_on_soft_labels():
    config = replace(TINY, image_shape=(8, 8), epochs=2, augment=AugmentConfig(mixup=0.2, cutmix=1.0))
    model, history = train(config, IMAGES, LABELS, 2, validation=(IMAGES, LABELS))
    assert model.loss == "categorical_crossentropy" and "val_loss" in history


def test_a_crashed_fit_resumes_from_its_checkpoint(tmp_path):
    import keras

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("power cut")

    config = replace(TINY, epochs=4)
    with pytest.raises(RuntimeError, match="power cut"):
        train(config, IMAGES, LABELS, 2, callbacks=[Crash()], backup_dir=tmp_path / "backup")
    assert (tmp_path / "backup").is_dir()
    _, history = train(config, IMAGES, LABELS, 2, backup_dir=tmp_path / "backup")
    assert len(history["loss"]) == 2  # epochs 3 and 4 only
    assert not (tmp_path / "backup").exists()  # removed once the fit completes


def test_images_stream_from_a_folder(tmp_path):
    from PIL import Image

    for i, (row, label) in enumerate(zip(IMAGES[:20], LABELS[:20], strict=True)):
        (tmp_path / str(label)).mkdir(exist_ok=True)
        Image.fromarray((row.reshape(8, 8) * 255).astype("uint8")).save(tmp_path / str(label) / f"{i}.png")
    stream = ImageFolder(FolderListing.scan(tmp_path), (8, 8), batch_size=8, workers=2)
    assert len(stream) == 3 and stream[0][0].shape == (8, 64)
    _, history = train(replace(TINY, image_shape=(8, 8)), stream, None, 2)
    assert len(history["loss"]) == 1


def test_flops_count_the_multiply_adds():
    model = build_model(replace(TINY, hidden_units=(8,)), IMAGES, 2)
    assert count_flops(model) == 2 * (64 * 8 + 8 * 2)


# The JAX backend is only checked where jax is installed; MLSTRATEGY_REQUIRE_JAX=1 makes its absence a
# failure (a CI job that must check it), instead of a skip that passes unnoticed.
REQUIRE_JAX = os.environ.get("MLSTRATEGY_REQUIRE_JAX", "") == "1"
NO_JAX = (
    "jax is not installed, so the JAX backend is NOT checked: `pip install jax` (or put a site with jax on "
    "PYTHONPATH) and run with MLSTRATEGY_REQUIRE_JAX=1 to make a missing jax fail this test"
)


def test_the_training_component_runs_on_jax():
    if importlib.util.find_spec("jax") is None:
        if REQUIRE_JAX:
            pytest.fail(f"MLSTRATEGY_REQUIRE_JAX=1 but {NO_JAX}", pytrace=False)
        pytest.skip(NO_JAX)
    code = (
        "import numpy as np; from components.config import TrainConfig;"
        "from components.training import train;"
        "x = np.random.default_rng(0).random((32, 64)).astype('float32');"
        "y = (x[:, 0] > 0.5).astype('int64');"
        "m, h = train(TrainConfig(hidden_units=(8,), epochs=1, image_shape=(8, 8)), x, y, 2);"
        "import keras; assert keras.backend.backend() == 'jax' and m.jit_compile; print('ok', h['loss'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def test_numbered_class_folders_keep_their_numbers_in_a_stream(tmp_path):
    from PIL import Image

    for name in ("2", "10"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.zeros((8, 8), "uint8")).save(tmp_path / name / "a.png")
    listing = FolderListing.scan(tmp_path)
    assert dict(zip([p.parent.name for p in listing.paths], listing.labels.tolist(), strict=True)) == {
        "2": 2,
        "10": 10,
    }
    stream = ImageFolder(listing, (8, 8), batch_size=2)
    with pytest.raises(ValueError, match="not a stream"):
        train(replace(TINY, image_shape=(8, 8), augment=AugmentConfig(mixup=0.2)), stream, None, 11)

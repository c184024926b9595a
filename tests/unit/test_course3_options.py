"""Gradient checking, multi-task learning, transfer learning and end to end vs a pipeline, on tiny data."""

import re
from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_digits

from components import end_to_end, gradcheck, multitask, transfer
from components.config import TrainConfig
from components.datasets import Degradation, degrade
from components.training import train

DIGITS = load_digits()
X = (DIGITS.data / 16).astype("float32")
Y = DIGITS.target.astype("int64")
FAST = TrainConfig(hidden_units=(32,), epochs=15, batch_size=32, learning_rate=0.01)


def test_gradcheck_passes_on_the_project_losses_and_layers():
    checks = gradcheck.project_checks(TrainConfig())
    assert [c.name for c in checks] == [
        "softmax cross-entropy + L2 (MLP)",
        "softmax cross-entropy + L2 (CNN)",
        "masked multi-task loss",
    ]
    for check in checks:
        assert check.relative_difference < 1e-6 and check.passed, check
        assert check.verdict.startswith("fine")


def test_gradcheck_catches_a_deliberately_wrong_gradient():
    import keras

    config = replace(TrainConfig(), hidden_units=(5,))
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = multitask.build_multitask(config, X[:8, :4], 3)
        labels = multitask.hide_labels(np.ones((8, 3), np.float32), 0.3)

        def wrong(y_true, y_pred):  # backprop never sees the second term
            return multitask.masked_binary_crossentropy(y_true, y_pred) + keras.ops.stop_gradient(
                keras.ops.sum(y_pred**2, axis=-1)
            )

        check = gradcheck.check_model(model, X[:8, :4], labels, wrong, "wrong")
        with pytest.raises(ValueError, match="dropout off"):
            gradcheck.check_model(
                multitask.build_multitask(replace(config, dropout=0.5), X[:8, :4], 3),
                X[:8, :4],
                labels,
                wrong,
            )
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
    assert check.relative_difference > 1e-3 and not check.passed and check.verdict.startswith("bug")
    with pytest.raises(ValueError, match="float64"):
        gradcheck.check_model(multitask.build_multitask(config, X[:8, :4], 3), X[:8, :4], labels, wrong)


def test_the_masked_loss_sums_the_present_labels_only():
    import keras

    y_true = np.array([[1, -1, 0], [-1, -1, 1]], np.float32)
    y_pred = np.array([[0.8, 0.3, 0.4], [0.5, 0.9, 0.6]], np.float32)
    loss = keras.ops.convert_to_numpy(multitask.masked_binary_crossentropy(y_true, y_pred))
    expected = [-np.log(0.8) - np.log(0.6), -np.log(0.6)]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    moved = y_pred.copy()
    moved[0, 1], moved[1, :2] = 0.01, [0.99, 0.02]  # only missing labels' predictions change
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(multitask.masked_binary_crossentropy(y_true, moved)), loss, rtol=1e-6
    )


def test_task_labels_are_checked_at_the_boundary():
    assert multitask.as_task_labels([[np.nan, 1.0]]).tolist() == [[-1.0, 1.0]]
    with pytest.raises(ValueError, match=r"row 0, task 1 is 2\.0"):
        multitask.as_task_labels([[0, 2]])
    hidden = multitask.hide_labels(np.zeros((1000, 3)), 0.3)
    assert 0.27 < np.mean(hidden == multitask.MISSING) < 0.33


def test_multitask_against_single_task_networks_on_the_digit_attributes():
    tasks, names = multitask.digit_attributes(Y)
    assert names == ["even", "greater_than_five", "has_loop"]
    assert tasks[Y == 8].tolist()[0] == [1, 1, 1] and tasks[Y == 1].tolist()[0] == [0, 0, 0]
    hidden = multitask.hide_labels(tasks[:600], 0.3)
    result = multitask.compare_multitask(
        replace(FAST, epochs=10), X[:600], hidden, X[1200:], tasks[1200:], names
    )
    assert len(result.multitask_error) == 3 and all(e < 0.3 for e in result.multitask_error)
    assert result.multitask_parameters < result.single_task_parameters  # one shared body
    assert set(result.to_dict()["tasks"]) == set(names)


def phone(x: np.ndarray) -> np.ndarray:
    """Another domain with the same input: the digits blurred, dimmed, noisy and shifted."""
    degraded = degrade(x.reshape(-1, 8, 8), Degradation(), np.random.default_rng(1))
    return degraded.reshape(len(x), -1).astype("float32")


def test_transfer_beats_scratch_on_a_small_target_and_says_when_it_stops_helping():
    cnn = replace(FAST, image_shape=(8, 8))  # per-channel normalization carries across the domains
    source, _ = train(replace(cnn, epochs=10), X[:1000], Y[:1000], 10)
    target_x, target_y = phone(X[1000:]), Y[1000:]
    # 30 examples make one mini-batch: both networks train 150 steps.
    points = transfer.compare_transfer(
        source,
        cnn,
        (target_x[:400], target_y[:400]),
        (target_x[400:], target_y[400:]),
        10,
        [30],
        min_steps=150,
    )
    assert points[0].frozen and points[0].transfer_error < points[0].scratch_error - 0.04, points
    made_up = [
        transfer.TransferPoint(n, s, t, True)
        for n, s, t in [(10, 0.5, 0.2), (100, 0.2, 0.15), (1000, 0.1, 0.12), (5000, 0.05, 0.06)]
    ]
    assert transfer.transfer_stops_helping(made_up) == 1000
    assert transfer.transfer_stops_helping(made_up[:2]) is None


def test_a_transfer_source_with_another_input_is_refused():
    source, _ = train(replace(FAST, epochs=1), X[:50, :32], Y[:50], 10)
    with pytest.raises(
        ValueError, match=r"takes inputs of shape \[32\] per example, but the target data has \[64\]"
    ):
        transfer.fine_tune(source, FAST, X[:50], Y[:50], 10)


def test_end_to_end_against_a_hand_designed_pipeline_over_growing_sizes():
    points = end_to_end.compare_end_to_end(
        replace(FAST, epochs=10), (X[:1200], Y[:1200]), (X[1200:], Y[1200:]), 10, [40, 1200]
    )
    assert [p.train_size for p in points] == [40, 1200]
    assert all(0 <= p.pipeline_error < 0.6 and 0 <= p.end_to_end_error < 0.9 for p in points)
    assert points[1].end_to_end_error < points[0].end_to_end_error
    made_up = [end_to_end.EndToEndPoint(100, 0.30, 0.20), end_to_end.EndToEndPoint(10_000, 0.05, 0.10)]
    assert end_to_end.verdict(made_up).startswith("end to end wins at your 10000 training examples: 5.0%")
    made_up.append(end_to_end.EndToEndPoint(1000, 0.08, 0.12))
    assert end_to_end.verdict(made_up).startswith(
        "end to end wins at your 10000 training examples (from 1000"
    )
    assert end_to_end.verdict(made_up[:1]).startswith(
        "the hand-designed pipeline wins at your 100 training examples"
    )


def tiny_preset(folder, image_shape=(8, 8, 1)):
    """A keras-hub ResNetBackbone built from config (as components/models.py does), saved as a preset."""
    import keras_hub

    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        image_shape=image_shape,
    ).save_to_preset(folder)
    return folder


def test_a_local_keras_hub_preset_is_a_transfer_source_under_the_project_head(tmp_path, monkeypatch):
    source = transfer.load_preset(tiny_preset(tmp_path / "resnet"))
    pretrained = source.get_weights()
    config = replace(FAST, hidden_units=(16,), epochs=3, image_shape=(8, 8))
    errors = {}
    for freeze in ("body", "none"):
        model, frozen = transfer.fine_tune(source, config, X[:300], Y[:300], 10, freeze=freeze)
        assert frozen == (freeze == "body")
        assert [layer.name for layer in model.layers[-4:]] == ["pool", "dense_0", "relu_0", "softmax"]
        assert model.output_shape == (None, 10)
        backbone = model.get_layer(source.name)
        moved = [not np.array_equal(a, b) for a, b in zip(backbone.get_weights(), pretrained, strict=True)]
        # Frozen: the backbone (batch-norm statistics included) keeps the preset's weights, the head trains.
        assert not any(moved) if frozen else any(moved)
        assert len(model.trainable_weights) == (4 if frozen else 4 + len(backbone.trainable_weights))
        errors[freeze] = float(np.mean(np.argmax(model.predict(X[1200:], verbose=0), -1) != Y[1200:]))
    assert errors["none"] < 0.7 and errors["body"] < 0.9, errors  # chance is 0.9
    assert all(np.array_equal(a, b) for a, b in zip(source.get_weights(), pretrained, strict=True))
    shapes = r"takes inputs of shape \[8, 8, 1\] per example, but the target data has \[4, 16, 1\]"
    with pytest.raises(ValueError, match=shapes):
        transfer.fine_tune(source, replace(config, image_shape=(4, 16)), X[:50], Y[:50], 10)
    with pytest.raises(ValueError, match=r"no image shape \(set data.image_shape\)"):
        transfer.fine_tune(source, replace(config, image_shape=None), X[:50], Y[:50], 10)
    with pytest.raises(ValueError, match=r"an image family \(train.family auto, cnn or resnet\), .* 'mlp'"):
        transfer.fine_tune(source, replace(config, family="mlp"), X[:50], Y[:50], 10)
    # Scratch is the same backbone, freshly initialized, under the same head: only pre-training differs.
    from components import training

    built = []

    def recorded(config, build, *args, **kwargs):
        model, history = real_fit_new(config, build, *args, **kwargs)
        built.append(model)
        return model, history

    real_fit_new = training.fit_new
    monkeypatch.setattr(training, "fit_new", recorded)
    (point,) = transfer.compare_transfer(
        source,
        replace(config, epochs=1),
        (X[:60], Y[:60]),
        (X[1200:1300], Y[1200:1300]),
        10,
        [60],
        min_steps=4,
    )
    assert 0 <= point.scratch_error <= 1 and 0 <= point.transfer_error <= 1
    scratch, tuned = built
    assert scratch.count_params() == tuned.count_params()
    assert [type(layer) for layer in scratch.layers] == [type(layer) for layer in tuned.layers]


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@pytest.fixture
def network(monkeypatch):
    """Every attempt to reach a host off this machine, refused and recorded at the socket layer, below
    any library's own download code (keras-hub, kagglehub, requests, urllib all resolve names there)."""
    import socket

    attempts = []
    resolve, connect = socket.getaddrinfo, socket.socket.connect

    def local(host) -> bool:
        return host is None or str(host) in LOCAL_HOSTS

    def refused_resolve(host, *args, **kwargs):
        if not local(host):
            attempts.append(str(host))
            raise socket.gaierror(f"no network in tests: {host}")
        return resolve(host, *args, **kwargs)

    def refused_connect(sock, address):
        if isinstance(address, tuple) and not local(address[0]):
            attempts.append(str(address[0]))
            raise ConnectionRefusedError(f"no network in tests: {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", refused_resolve)
    monkeypatch.setattr(socket.socket, "connect", refused_connect)
    return attempts


def test_the_network_guard_catches_a_real_download(network):
    """The positive control: what keras-hub does for a preset name (here, and not in the project's code)
    reaches the guard, so an empty record in the tests below means nothing was asked for."""
    import keras_hub

    with pytest.raises(Exception):  # noqa: B017 (whichever error the download library makes of it)
        keras_hub.models.Backbone.from_preset("resnet_18_imagenet")
    assert network and not set(network) & LOCAL_HOSTS


def test_only_a_local_preset_directory_is_loaded_and_nothing_is_downloaded(tmp_path, monkeypatch, network):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"'resnet_18_imagenet' is not a local keras-hub preset directory"):
        transfer.load_preset("resnet_18_imagenet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"config.json, metadata.json, model.weights.h5 missing"):
        transfer.load_preset(tmp_path / "empty")
    preset = tiny_preset(tmp_path / "resnet")
    assert transfer.is_backbone(transfer.load_preset(preset))  # a whole preset directory: loaded from disk
    assert transfer.is_backbone(transfer.load_preset("resnet"))  # by a relative path too
    (preset / "model.weights.h5").unlink()
    missing = f"'{preset}' is not a keras-hub preset directory: model.weights.h5 missing"
    with pytest.raises(ValueError, match=re.escape(missing)):
        transfer.load_preset(preset)
    assert network == []  # nothing was fetched, nor even looked up


def test_the_compare_stage_reads_a_preset_directory_and_refuses_a_preset_name(tmp_path, monkeypatch, network):
    from pipelines.errors import UserError
    from pipelines.stages.compare import source_model
    from pipelines.store.params import CompareParams, load_params

    params = load_params()
    preset = tiny_preset(tmp_path / "resnet")

    def named(source):
        compare = params.compare.model_copy(update={"transfer_source": source})
        return params.model_copy(update={"compare": compare})

    assert transfer.is_backbone(source_model(named(str(preset)), X[:0], Y[:0], 10))
    monkeypatch.chdir(tmp_path)
    refused = r"no model at resnet_18_imagenet \(.*preset names are not downloaded"
    with pytest.raises(UserError, match=refused):
        source_model(named("resnet_18_imagenet"), X[:0], Y[:0], 10)
    with pytest.raises(UserError, match=r"'\.' is not a keras-hub preset directory"):
        source_model(named("."), X[:0], Y[:0], 10)
    with pytest.raises(ValueError, match="is a download handle"):
        CompareParams(transfer_source="hf://keras/resnet_18_imagenet")
    assert network == []


def test_the_table_baselines_read_mixed_columns_and_a_text_of_few_words():
    import pandas as pd

    from components.columns import frame_of, model_inputs

    n = 80
    frame = pd.DataFrame(
        {
            "size": [float(i % 13) if i % 9 else None for i in range(n)],
            "city": [["Oslo", "Lima", None][i % 3] for i in range(n)],
            "note": [["late", "on time", None][i % 3] for i in range(n)],  # three words in all
        }
    )
    kinds = {"size": "numeric", "city": "categorical", "note": "text"}
    x = frame_of(model_inputs(frame, kinds))
    y = np.arange(n) % 2
    for name, pipeline in end_to_end.table_baselines(kinds).items():
        assert pipeline.fit(x, y).predict(x).shape == (n,), name
    point = end_to_end.EndToEndPoint(80, 0.3, 0.2, {"gradient_boosting": 0.2, "logistic_regression": 0.25})
    assert end_to_end.verdict([point]).startswith(
        "the network does not beat gradient-boosted trees at your 80"
    )

"""minicnn.interop.keras: minicnn <-> Keras 3 conversion, and loading models trained and saved with Keras.

The numbers of converted models are checked in depth by tests/test_keras_parity.py; here: the layer mapping, the
weight layouts, what is skipped or refused, the .keras round trip of a model trained in Keras, and that minicnn
itself never imports Keras.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from keras_reference import digit_like_input, jax, keras, scaled_error, x64_enabled

import minicnn
from minicnn.errors import MiniCNNError, ModelFileError
from minicnn.interop import InteropWarning, UnsupportedLayerError, from_keras, load_keras_model, to_keras
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Softmax

pytestmark = pytest.mark.parity  # .ci/run runs these again under each OPENBLAS_CORETYPE

FLOAT32_PREDICTIONS = 5e-6  # scaled error of float32 predictions (docs/keras-parity.md)


@pytest.fixture(scope="module", autouse=True)
def jax_x64():
    with x64_enabled():
        yield


def layer_summary(model):
    return [(type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"})
            for layer in model.layers]


# ---------------------------------------------------------------------------------------------- minicnn -> Keras
def test_minicnn_never_imports_keras():
    code = ("import sys, numpy as np, minicnn, minicnn.interop\n"
            "model = minicnn.seed_cnn()\n"
            "model.compile('adam')\n"
            "model.fit(np.zeros((4, 28, 28, 1)), np.arange(4), epochs=1, verbose=0)\n"
            "model.predict(np.zeros((2, 28, 28, 1)))\n"
            "loaded = [name for name in ('keras', 'jax', 'tensorflow', 'torch') if name in sys.modules]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.parametrize("architecture", sorted(minicnn.ARCHITECTURES))
@pytest.mark.parametrize("fuse_activations", [True, False], ids=["fused", "separate"])
def test_round_trip_keeps_layers_and_weights(architecture, fuse_activations):
    model = minicnn.ARCHITECTURES[architecture](seed=3)
    keras_model = to_keras(model, fuse_activations=fuse_activations)
    assert isinstance(keras_model, keras.Sequential)
    assert tuple(keras_model.input_shape) == (None, *model.input_shape)
    # Keras layouts are minicnn's: conv kernels (KH, KW, C_in, C_out), dense kernels (D_in, D_out); same arrays.
    keras_arrays = [np.asarray(v.value) for v in keras_model.trainable_variables]
    for parameter, array in zip(model.parameters(), keras_arrays, strict=True):
        np.testing.assert_array_equal(array, parameter.value)
    mlp = architecture in ("mlp", "report003")  # (Flatten first)
    lead = 1 if architecture == "report004" else 0  # (report004: RandomRotation first, then the seed CNN's layers)
    if lead:
        assert type(keras_model.layers[0]) is keras.layers.RandomRotation
    first = keras_model.layers[lead] if not mlp else keras_model.layers[1]
    assert type(first) is (keras.layers.Conv2D if not mlp else keras.layers.Dense)
    after_first = (keras.layers.ReLU if architecture != "report003"
                   else keras.layers.LeakyReLU)  # (leaky_relu: a LeakyReLU(0.2) layer, never fused)
    if fuse_activations and architecture != "report003":
        assert first.activation is keras.activations.relu
        assert keras_model.layers[-1].activation is keras.activations.softmax
    else:
        assert isinstance(keras_model.layers[lead + 1 if not mlp else 2], after_first)
    if not fuse_activations:
        assert isinstance(keras_model.layers[-1], keras.layers.Softmax)

    back = from_keras(keras_model)
    assert layer_summary(back) == layer_summary(model)
    assert back.input_shape == model.input_shape and back.dtype == model.dtype
    for a, b in zip(back.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    x = np.random.default_rng(0).random((3, *model.input_shape), dtype=np.float32)
    assert scaled_error(model.predict(x), np.asarray(keras_model(x, training=False))) < FLOAT32_PREDICTIONS


def test_to_keras_float64_keeps_float64():
    model = minicnn.Sequential([Conv2D(3, 3, strides=2, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(4),
                                Softmax()], input_shape=(9, 9, 2), dtype="float64")
    keras_model = to_keras(model)
    assert all(v.dtype == "float64" for v in keras_model.weights)
    x = np.random.default_rng(1).random((2, 9, 9, 2))
    out = np.asarray(keras_model(x))
    assert out.dtype == np.float64
    assert scaled_error(model.predict(x), out) < 1e-13


def test_to_keras_float64_refuses_32_bit_jax():
    model = minicnn.Sequential([Flatten(), Dense(2)], input_shape=(2, 2, 1), dtype="float64")
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(MiniCNNError, match="jax_enable_x64"):
            to_keras(model)
    finally:
        jax.config.update("jax_enable_x64", True)


# ---------------------------------------------------------------------------------------------- Keras -> minicnn
def report_model(dropout=True):
    """The network of the reports: Conv2D(64, (3, 3), relu), MaxPooling2D, Flatten, Dense(64, relu), Dropout,
    Dense(10, softmax)."""
    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(64, (3, 3), activation="relu"),
              keras.layers.MaxPooling2D((2, 2)), keras.layers.Flatten(),
              keras.layers.Dense(64, activation="relu")]
    layers += [keras.layers.Dropout(0.5)] if dropout else []
    layers += [keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential(layers, name="report_cnn")


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_keras_model_trained_and_saved_loads_with_the_same_predictions(tmp_path):
    """A Keras model trained for a few steps (with Dropout active in training), saved to .keras, loaded into
    minicnn (Dropout included, with its rate): same predictions, in float32 and in float64."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(2)
    x, y = digit_like_input(rng, 64, dtype=np.float32), rng.integers(0, 10, 64)
    keras_model = report_model()
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = keras_model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "digits.keras"
    keras_model.save(path)

    model = load_keras_model(path)
    assert [type(layer) for layer in model.layers] == [Conv2D, ReLU, MaxPool2D, Flatten, Dense, ReLU, Dropout, Dense,
                                                       Softmax]
    assert model.layers[6].rate == 0.5
    assert model.dtype == np.float32 and model.input_shape == (28, 28, 1)
    x_test = digit_like_input(rng, 16, dtype=np.float32)
    expected = keras_model.predict(x_test, verbose=0)
    predictions = model.predict(x_test)
    assert scaled_error(predictions, expected) < FLOAT32_PREDICTIONS
    np.testing.assert_array_equal(predictions.argmax(axis=1), expected.argmax(axis=1))

    model64 = load_keras_model(path, dtype="float64")
    assert model64.dtype == np.float64
    assert scaled_error(model64.predict(x_test), expected) < FLOAT32_PREDICTIONS

    # The loaded model trains on in minicnn (with its Dropout).
    model.compile(optimizer="adam")
    loss, _ = model.train_step(x[:16], y[:16])
    assert np.isfinite(loss)


def test_load_keras_model_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such"):
        load_keras_model(tmp_path / "absent.keras")


def test_from_keras_accepts_activation_layers_and_functional_chains():
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="linear")(inputs)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.MaxPooling2D(2, strides=1)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, activation=None)(h)
    h = keras.layers.Activation("linear")(h)
    outputs = keras.layers.Softmax()(h)
    keras_model = keras.Model(inputs, outputs, name="functional_chain")
    model = from_keras(keras_model)
    assert [type(layer) for layer in model.layers] == [Conv2D, ReLU, MaxPool2D, ReLU, Flatten, Dense, Softmax]
    assert model.layers[2].strides == (1, 1)
    x = np.random.default_rng(3).standard_normal((4, 6, 6, 2)).astype(np.float32)
    assert scaled_error(model.predict(x), np.asarray(keras_model(x, training=False))) < FLOAT32_PREDICTIONS
    assert len({layer.name for layer in model.layers}) == len(model.layers)


def test_from_keras_float64_model_stays_float64():
    keras_model = keras.Sequential([keras.Input((4, 4, 1), dtype="float64"),
                                    keras.layers.Conv2D(2, 3, dtype="float64"),
                                    keras.layers.Flatten(dtype="float64"),
                                    keras.layers.Dense(3, activation="softmax", dtype="float64")])
    model = from_keras(keras_model)
    assert model.dtype == np.float64
    x = np.random.default_rng(4).random((2, 4, 4, 1))
    assert scaled_error(model.predict(x), np.asarray(keras_model(x))) < 1e-13


def test_from_keras_use_bias_false_becomes_a_zero_bias():
    keras_model = keras.Sequential([keras.Input((5, 5, 1)), keras.layers.Conv2D(2, 3, use_bias=False),
                                    keras.layers.Flatten(), keras.layers.Dense(3, use_bias=False)])
    with pytest.warns(InteropWarning, match="use_bias=False"):
        model = from_keras(keras_model)
    assert not model.layers[0].bias.value.any()
    x = np.random.default_rng(5).random((2, 5, 5, 1)).astype(np.float32)
    assert scaled_error(model.predict(x), np.asarray(keras_model(x, training=False))) < FLOAT32_PREDICTIONS


def test_from_keras_needs_a_known_input_shape():
    keras_model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(UnsupportedLayerError, match="input_shape"):
        from_keras(keras_model)
    model = from_keras(keras_model, input_shape=(6, 6, 1))
    x = np.random.default_rng(6).random((2, 6, 6, 1)).astype(np.float32)
    assert scaled_error(model.predict(x), np.asarray(keras_model(x, training=False))) < FLOAT32_PREDICTIONS


@pytest.mark.parametrize("make_layer, message", [
    (lambda: keras.layers.BatchNormalization(axis=1, name="bn"), "'bn' .*axis=1"),
    (lambda: keras.layers.AveragePooling2D(2, data_format="channels_first", name="avg"), "'avg' .*data_format"),
    (lambda: keras.layers.Conv2D(2, 3, dilation_rate=2, name="dilated"), "'dilated'.*dilation_rate"),
    (lambda: keras.layers.Conv2D(2, 3, activation="tanh", name="tanh_conv"), "'tanh_conv'.*tanh"),
    (lambda: keras.layers.ReLU(max_value=6.0, name="relu6"), "'relu6'.*max_value"),
    (lambda: keras.layers.PReLU(name="prelu"), "'prelu' .*PReLU"),
    (lambda: keras.layers.Conv2D(2, 3, activity_regularizer="l2", name="active"), "'active'.*activity_regularizer"),
], ids=["batchnorm-axis-1", "avgpool-channels-first", "dilation", "tanh", "relu6", "prelu", "activity-regularizer"])
def test_from_keras_refuses_what_it_cannot_reproduce(make_layer, message):
    keras_model = keras.Sequential([keras.Input((8, 8, 2)), make_layer(), keras.layers.Flatten(),
                                    keras.layers.Dense(2)])
    with pytest.raises(UnsupportedLayerError, match=message):
        from_keras(keras_model)


def test_from_keras_refuses_branching_models():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(3)(inputs)
    b = keras.layers.Dense(3)(inputs)
    keras_model = keras.Model(inputs, keras.layers.Add()([a, b]))
    with pytest.raises(UnsupportedLayerError, match="not a simple stack"):
        from_keras(keras_model)

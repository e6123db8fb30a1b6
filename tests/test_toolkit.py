"""The reports' toolkit: LeakyReLU, AveragePooling2D, Dropout, BatchNormalization and the regularizers.

Float64 gradient checks in training mode (BatchNormalization's batch statistics, Dropout with a fixed mask),
the fast engine against the reference engine on a model with every new layer, saving and loading (with the
moving statistics), the reports' models, and the error messages. Keras parity: tests/test_keras_parity.py.
"""
import numpy as np
import pytest

import minicnn
from minicnn import regularizers
from minicnn.gradcheck import check_layer, check_model
from minicnn.layers import AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from minicnn.regularizers import l1, l1_l2, l2

TOLERANCE = 1e-6


# ---------------------------------------------------------------------------------------------- LeakyReLU
def test_leaky_relu_slope_at_zero_is_one_as_keras_on_jax():
    layer = LeakyReLU(negative_slope=0.25)
    layer.build((4,), np.float64, None)
    y, cache = layer.forward(np.array([[-2.0, 0.0, 3.0, -0.0]]))
    np.testing.assert_array_equal(y, [[-0.5, 0.0, 3.0, 0.0]])
    np.testing.assert_array_equal(layer.backward(np.ones((1, 4)), cache, []), [[0.25, 1, 1, 1]])


def test_leaky_relu_gradient_at_exact_zeros():
    x = np.array([[0.0, 1.5, 0.0, -2.0, 0.0, 0.7]])
    report = check_layer(LeakyReLU(), (6,), x=x, verbose=False)
    assert report.passed, str(report)


def test_activation_leaky_relu_is_keras_activation_with_slope_0_2():
    model = minicnn.Sequential([Flatten(), Dense(4, activation="leaky_relu")], input_shape=(2, 2, 1))
    assert isinstance(model.layers[-1], LeakyReLU) and model.layers[-1].negative_slope == 0.2
    assert model.layers[-1].name == "leaky_relu"


@pytest.mark.parametrize("slope", [-0.1, float("nan"), "0.2", None])
def test_leaky_relu_rejects_a_bad_slope(slope):
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(negative_slope=slope)


# ---------------------------------------------------------------------------------------------- AveragePooling2D
def test_average_pooling_same_averages_only_the_real_inputs_as_keras():
    """Keras 3 (JAX), run once: AveragePooling2D(2, padding="same") of 1..25 in a 5x5 image gives these."""
    x = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5, 1)
    layer = AveragePooling2D(2, padding="same")
    layer.build((5, 5, 1), np.float64, None)
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[4, 6, 7.5], [14, 16, 17.5], [21.5, 23.5, 25]])


def test_average_pooling_valid_drops_the_last_row_and_column():
    x = np.arange(1, 26, dtype=np.float64).reshape(1, 5, 5, 1)
    layer = AveragePooling2D(2)
    layer.build((5, 5, 1), np.float64, None)
    np.testing.assert_array_equal(layer(x)[0, :, :, 0], [[4, 6], [14, 16]])


# ---------------------------------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("make_layer, input_shape", [
    pytest.param(lambda: BatchNormalization(), (5,), id="bn-after-dense"),
    pytest.param(lambda: BatchNormalization(), (3, 4, 2), id="bn-nhwc"),
    pytest.param(lambda: BatchNormalization(momentum=0.9, epsilon=1e-5, center=False), (3, 3, 2), id="bn-no-beta"),
    pytest.param(lambda: BatchNormalization(scale=False), (4,), id="bn-no-gamma"),
    pytest.param(lambda: Dropout(0.4, seed=3), (3, 3, 2), id="dropout-0.4"),
    pytest.param(lambda: Dropout(0.0), (6,), id="dropout-0"),
])
def test_new_layer_gradients_in_training_mode(make_layer, input_shape):
    report = check_layer(make_layer(), input_shape, batch_size=3, seed=1, verbose=False)
    assert report.passed, str(report)


def test_batch_normalization_gradient_at_inference():
    """With the moving statistics (inference), BatchNormalization is a fixed affine map: dx = dy * gamma * inv."""
    layer = BatchNormalization()
    layer.build((3,), np.float64, None)
    layer.moving_mean.value[...] = [0.5, -1.0, 2.0]
    layer.moving_variance.value[...] = [4.0, 0.25, 1.0]
    layer.gamma.value[...] = [1.5, -2.0, 0.5]
    y, cache = layer.forward(np.ones((2, 3)), training=False)
    dx = layer.backward(np.ones((2, 3)), cache, [np.zeros(3), np.zeros(3)])
    np.testing.assert_allclose(dx[0], [1.5, -2.0, 0.5] / np.sqrt(np.array([4.0, 0.25, 1.0]) + 1e-3))


def test_dropout_mask_is_fixed_by_seed_and_call_number():
    layer = Dropout(0.5, seed=7)
    layer.build((100,), np.float64, None)
    x = np.ones((4, 100))
    first, second = layer(x, training=True), layer(x, training=True)
    assert not np.array_equal(first, second)  # a new mask per call
    assert set(np.unique(first)) == {0.0, 2.0} and 0.35 < (first == 0).mean() < 0.65
    again = Dropout(0.5, seed=7)
    again.build((100,), np.float64, None)
    np.testing.assert_array_equal(again(x, training=True), first)
    np.testing.assert_array_equal(layer(x, training=False), x)  # identity at inference


def every_new_layer_model(engine, dtype="float64", rate=0.3, seed=3):
    """A small model with every new layer (and a regularized convolution and Dense)."""
    layers = [Conv2D(4, 3, padding="same", kernel_regularizer=l2(0.01), bias_regularizer=l1(0.02)),
              BatchNormalization(), ReLU(), AveragePooling2D(2), Dropout(rate, seed=1),
              Conv2D(5, 3, activation="relu"), MaxPool2D(2, padding="same"), Flatten(),
              Dense(6, kernel_regularizer="l2"), BatchNormalization(), LeakyReLU(), Dropout(rate / 2),
              Dense(3, activation="leaky_relu", kernel_regularizer=l1_l2(0.01, 0.02)), Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(9, 9, 2), dtype=dtype, seed=seed, engine=engine)


@pytest.mark.parametrize("engine", ["reference", "fast", "twins"])
def test_whole_model_with_every_new_layer_gradients(engine):
    """Every tensor passes but the biases right before a BatchNormalization: the normalization subtracts them
    again, so their true gradient is exactly 0 (backprop gives rounding noise of 1e-17, finite differences
    1e-10: a relative error means nothing there, both are checked to be ~0 instead)."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 9, 9, 2)), rng.integers(0, 3, 5)
    model = every_new_layer_model(engine)
    report = check_model(model, x, y, max_entries=None, verbose=False)
    before_normalization = {"conv2d.bias", "dense.bias"}
    assert [r.name for r in report if not r.passed] == sorted(before_normalization, key=[r.name for r in report].index)
    for layer_name in ("conv2d", "dense"):
        layer = next(layer for layer in model.layers if layer.name == layer_name)
        # (conv2d.bias has an l1 penalty: its gradient is the penalty's alone)
        penalty = layer.bias.regularizer.gradient(layer.bias.value) if layer.bias.regularizer else 0
        assert np.max(np.abs(layer.bias.grad - penalty)) < 1e-12
    for result in report:
        if result.name not in before_normalization:
            assert result.relative_error < TOLERANCE, str(result)


# ---------------------------------------------------------------------------------------------- both engines
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fast_and_reference_engines_agree_on_every_new_layer(dtype):
    """Five Adam steps with dropout on (the same masks: same seeds, same call numbers), then evaluate/predict
    with the moving statistics: the fast engine (two threads: each computes half the batch, the batch statistics
    are added up over both, each draws its rows of the dropout masks) against the reference engine.

    float32: the first step agrees to 1e-6; later ones to 1e-3 only. The biases right before a BatchNormalization
    (and conv2d_1's, whose effect the Dense + BatchNormalization after it nearly cancels) have gradients of rounding
    size, and Adam's first update is lr * g / (|g| + epsilon): their rounding decides a 1e-3 change of those
    biases (the fast engine's statistics are computed in one float64 pass, the reference's in two float32 passes).
    float64 holds every step to 1e-12."""
    rng = np.random.default_rng(1)
    models = {engine: every_new_layer_model(engine, dtype) for engine in ("reference", "fast", "twins")}
    models["fast"].threads = 2
    losses = {engine: [] for engine in models}
    for _ in range(5):
        x = rng.standard_normal((8, 9, 9, 2)).astype(dtype)
        y = rng.integers(0, 3, 8)
        for engine, model in models.items():
            if model.optimizer is None:
                model.compile(minicnn.optimizers.Adam(1e-2))
            losses[engine].append(model.train_step(x, y)[0])
    tolerance = 1e-12 if dtype == "float64" else 1e-3
    x_test = rng.standard_normal((7, 9, 9, 2)).astype(dtype)
    reference = models["reference"]
    for engine in ("fast", "twins"):
        assert losses[engine][0] == pytest.approx(losses["reference"][0], rel=1e-12 if dtype == "float64" else 1e-6)
        np.testing.assert_allclose(losses[engine], losses["reference"], rtol=tolerance)
        for w, w_ref in zip(models[engine].get_weights(), reference.get_weights()):
            np.testing.assert_allclose(w, w_ref, rtol=100 * tolerance, atol=min(100 * tolerance, 1e-2))
        np.testing.assert_allclose(models[engine].predict(x_test), reference.predict(x_test), rtol=100 * tolerance,
                                   atol=min(100 * tolerance, 1e-2))
    assert losses["reference"][0] > reference.regularization_penalty() > 0


def test_training_flag_reaches_every_layer():
    """fit/train_step train (dropout on, batch statistics, moving statistics updated); evaluate/predict infer
    (the identity, the moving statistics, nothing updated)."""
    model = minicnn.Sequential([Flatten(), Dense(8), BatchNormalization(), Dropout(0.5, seed=0), Dense(2)],
                               input_shape=(4,), dtype="float64")
    x, y = np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 2
    batch_norm, dropout = model.layers[2], model.layers[3]
    states = [s.value.copy() for s in model.states()]
    first = model.predict(x)
    model.evaluate(x, y)
    np.testing.assert_array_equal(model.predict(x), first)
    assert dropout.calls == 0 and all(np.array_equal(a, s.value) for a, s in zip(states, model.states()))
    model.compile(minicnn.optimizers.SGD(1e-3))
    model.train_step(x, y)
    assert dropout.calls == 1
    assert not np.array_equal(batch_norm.moving_mean.value, states[0])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert dropout.calls == 2  # fit numbers the draws by (epoch, step): steps 0 and 1 ran, whatever ran before


# ---------------------------------------------------------------------------------------------- regularizers
@pytest.mark.parametrize("regularizer, penalty, gradient", [
    (l2(0.01), 0.01 * (1 + 4 + 0 + 0.25), 0.02 * np.array([1.0, -2.0, 0.0, 0.5])),
    (l1(0.1), 0.1 * 3.5, 0.1 * np.array([1.0, -1.0, 1.0, 1.0])),  # (+f at 0, as Keras on JAX)
    (l1_l2(0.1, 0.01), 0.1 * 3.5 + 0.01 * 5.25, 0.1 * np.array([1.0, -1.0, 1.0, 1.0]) + 0.02 * np.array([1.0, -2.0, 0.0, 0.5])),
])
def test_regularizer_penalty_and_gradient(regularizer, penalty, gradient):
    w = np.array([1.0, -2.0, 0.0, 0.5])
    assert regularizer(w) == pytest.approx(penalty, rel=1e-14)
    np.testing.assert_allclose(regularizer.gradient(w), gradient, rtol=1e-14)


def test_regularizer_names_and_defaults_are_keras():
    assert regularizers.get("l2") == l2(0.01) and regularizers.get("l1") == l1(0.01)
    assert l1_l2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert Dense(3, kernel_regularizer="l2").kernel_regularizer == l2(0.01)


@pytest.mark.parametrize("factor", [-0.01, float("nan"), float("inf"), "0.01", None, True])
def test_regularizer_rejects_a_negative_or_non_number_factor(factor):
    with pytest.raises(ValueError, match="non-negative number"):
        l2(factor)
    with pytest.raises(ValueError, match="non-negative number"):
        l1_l2(l1=factor)


def test_unknown_regularizer_name_says_what_exists():
    with pytest.raises(ValueError, match="Conv2D kernel_regularizer: unknown regularizer 'l3'.*l2"):
        Conv2D(4, 3, kernel_regularizer="l3")


def test_regularizer_gradient_check_whole_model():
    """The penalty is in the checked loss (gradcheck adds model.regularization_penalty()); l1 away from 0."""
    model = minicnn.Sequential([Flatten(), Dense(5, kernel_regularizer=l1_l2(0.03, 0.05), bias_regularizer=l2(0.2)),
                                LeakyReLU(), Dense(3, kernel_regularizer=l1(0.02))],
                               input_shape=(4,), dtype="float64", seed=1)
    rng = np.random.default_rng(0)
    model.layers[1].bias.value[...] = rng.uniform(-1, 1, 5)
    report = check_model(model, rng.standard_normal((6, 4)), rng.integers(0, 3, 6), max_entries=None, verbose=False)
    assert report.passed, str(report)


@pytest.mark.parametrize("engine", ["reference", "fast"])
def test_penalty_is_in_the_training_loss_and_evaluate(engine):
    model = every_new_layer_model(engine, rate=0.0)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 9, 9, 2)), rng.integers(0, 3, 6)
    penalty = model.regularization_penalty()
    assert penalty > 0
    plain = minicnn.Sequential.from_config(model.get_config())
    assert [w.tobytes() for w in plain.get_weights()] == [w.tobytes() for w in model.get_weights()]
    for layer in plain.layers:
        for parameter in layer.parameters():
            parameter.regularizer = None
    loss_sum, _, _ = model.loss_and_gradients(model.prepare_inputs(x), model.prepare_labels(y, 6))
    plain_sum, _, _ = plain.loss_and_gradients(plain.prepare_inputs(x), plain.prepare_labels(y, 6))
    assert loss_sum / 6 == pytest.approx(plain_sum / 6 + penalty, rel=1e-12)
    conv = model.layers[0]
    np.testing.assert_allclose(conv.kernel.grad - plain.layers[0].kernel.grad, 0.02 * conv.kernel.value, atol=1e-15)
    assert model.evaluate(x, y)[0] == pytest.approx(plain.evaluate(x, y)[0] + penalty, rel=1e-12)


# ---------------------------------------------------------------------------------------------- files and configs
def test_save_and_load_keep_moving_statistics_dropout_seeds_and_regularizers(tmp_path):
    model = every_new_layer_model("fast", dtype="float32")
    rng = np.random.default_rng(4)
    model.compile(minicnn.optimizers.Adam(1e-2))
    model.fit(rng.standard_normal((40, 9, 9, 2)), rng.integers(0, 3, 40), epochs=2, batch_size=8, verbose=0)
    assert not np.allclose(model.layers[1].moving_variance.value, 1)
    model.save(tmp_path / "toolkit.npz")
    with np.load(tmp_path / "toolkit.npz") as archive:
        assert {"state_000", "state_001", "state_002", "state_003"} <= set(archive.files)
    loaded = minicnn.load_model(tmp_path / "toolkit.npz")
    for w, w_loaded in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w, w_loaded)
    x = rng.standard_normal((5, 9, 9, 2))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.regularization_penalty() == pytest.approx(model.regularization_penalty(), rel=1e-6)
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    dropouts = [layer for layer in loaded.layers if isinstance(layer, Dropout)]
    assert [layer.seed for layer in dropouts][0] == 1 and dropouts[1].seed == model.layers[12].seed  # drawn, kept


def test_get_weights_order_and_summary_count_the_moving_statistics():
    model = minicnn.Sequential([Flatten(), Dense(3), BatchNormalization(), Dense(2)], input_shape=(4,))
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 3), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]  # kernel, bias, gamma, beta, mean, variance
    text = model.summary(print_fn=None)
    assert "Total params: 35" in text and "Trainable params: 29" in text and "Non-trainable params: 6" in text
    assert model.flat_params.size == 29
    with pytest.raises(minicnn.errors.ShapeError, match="8 parameters"):
        model.set_weights(model.get_weights()[:-1])


# ---------------------------------------------------------------------------------------------- errors
def test_batch_normalization_refuses_a_training_batch_of_one():
    model = minicnn.Sequential([Flatten(), Dense(3), BatchNormalization(), Dense(2)], input_shape=(4,))
    model.compile()
    with pytest.raises(minicnn.errors.ShapeError, match="batch_normalization got a training batch of one sample.*at "
                                                        "least 2"):
        model.fit(np.ones((1, 4)), [1], verbose=0)
    assert model.predict(np.ones((1, 4))).shape == (1, 2)  # inference on one sample is fine


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, float("nan"), "0.5", None])
def test_dropout_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match=r"Dropout rate must be a number in \[0, 1\)"):
        Dropout(rate)


# ---------------------------------------------------------------------------------------------- the reports' models
def test_report_models():
    report001 = minicnn.report001()
    kinds = [type(layer).__name__ for layer in report001.layers]
    assert kinds.count("BatchNormalization") == 5 and kinds.count("Conv2D") == 5
    assert [layer.rate for layer in report001.layers if isinstance(layer, Dropout)] == [0.3, 0.4, 0.5, 0.5, 0.5]
    assert [layer.filters for layer in report001.layers if isinstance(layer, Conv2D)] == [64, 64, 128, 128, 256]
    assert all(layer.padding == "same" for layer in report001.layers if isinstance(layer, Conv2D))
    assert report001.count_params() == 1_870_794 and report001.count_trainable_params() == 1_869_514
    report003 = minicnn.report003()
    assert [layer.negative_slope for layer in report003.layers if isinstance(layer, LeakyReLU)] == [0.2, 0.2]
    report004, seed = minicnn.report004(), minicnn.seed_cnn()
    rotation, first = report004.layers[:2]  # RandomRotation(10/360), then the seed CNN's first convolution
    assert type(rotation).__name__ == "RandomRotation" and rotation.factor == (-10 / 360, 10 / 360)
    assert first.kernel_regularizer == l2(0.01) and first.bias_regularizer == l2(0.01)
    assert all(layer.kernel_regularizer is None for layer in report004.layers[2:] if hasattr(layer, "kernel"))
    for a, b in zip(report004.get_weights(), seed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the seed CNN's weights, and a penalty on them
    assert report004.regularization_penalty() == pytest.approx(
        0.01 * (np.sum(first.kernel.value.astype(np.float64) ** 2) + np.sum(first.bias.value ** 2)), rel=1e-5)


def test_report001_trains_and_predicts_on_both_engines():
    """Two steps of the real report001 at batch 16 on each engine (fast and reference agree in float64), then
    predict. float32 is checked against float64 loosely: on these random images (all alike) BatchNormalization's
    input gradient is a small remainder of dy after its mean and xhat terms are taken off, so float32 loses digits
    there on either engine (first-step kernel gradients off by 2e-2 relative, the reference's up to 1e-1), and
    Adam turns that into a 1e-3 loss difference at the second step."""
    rng = np.random.default_rng(5)
    x, y = rng.random((16, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 16)
    results, models = {}, {}
    for engine, dtype in [("fast", "float64"), ("reference", "float64"), ("fast", "float32")]:
        model = models[engine, dtype] = minicnn.report001(engine=engine, dtype=dtype)
        model.compile(minicnn.optimizers.Adam(1e-3))
        results[engine, dtype] = [model.train_step(x.astype(dtype), y)[0] for _ in range(2)]
    np.testing.assert_allclose(results["fast", "float64"], results["reference", "float64"], rtol=1e-10)
    assert results["fast", "float32"][0] == pytest.approx(results["reference", "float64"][0], rel=1e-5)
    np.testing.assert_allclose(results["fast", "float32"], results["reference", "float64"], rtol=2e-3)
    np.testing.assert_allclose(models["fast", "float64"].predict(x[:5]), models["reference", "float64"].predict(x[:5]),
                               atol=1e-10)
    np.testing.assert_allclose(models["fast", "float32"].predict(x[:5]), models["reference", "float64"].predict(x[:5]),
                               atol=1e-3)

"""Keras parity of the reports' toolkit: BatchNormalization, Dropout, LeakyReLU, AveragePooling2D and the
regularizers, against Keras 3 on JAX, in float32 and float64 (the tolerances of tests/test_keras_parity.py,
explained in docs/keras-parity.md). LeakyReLU and AveragePooling2D alone are cases of that file's LAYER_CASES;
here:

* BatchNormalization alone: outputs at inference (moving statistics) and in training (batch statistics), the
  vector-Jacobian product in training, and the moving statistics after several training calls;
* a model with every new layer and l1/l2/l1_l2 regularizers (dropout rate 0, the only way to get the same masks:
  Keras draws its own): outputs at inference, loss including the penalties, every gradient, the input gradient
  and the moving statistics after a training step, on both engines;
* 20 Adam steps of that model (Keras: compile + train_on_batch): loss curves (with penalties), weights and
  moving statistics;
* a model trained in Keras (with a real dropout rate) loads with from_keras and predicts and evaluates the same.
"""
from __future__ import annotations

import jax.numpy as jnp  # after keras_reference, which skips this module when JAX is missing
import numpy as np
import pytest
from keras_reference import jax, keras, scaled_error, x64_enabled
from test_keras_parity import TOLERANCES, assert_close, check_dtype, keras_loss

import minicnn
from minicnn.interop import to_keras
from minicnn.layers import (
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Softmax,
)
from minicnn.optimizers import Adam
from minicnn.regularizers import l1, l1_l2, l2

pytestmark = pytest.mark.parity  # .ci/run runs these again under each OPENBLAS_CORETYPE

TRAIN_STEPS = 20


def tolerance_key(dtype, batch_normalization=True):
    """Keras 3 (3.15.1 here) computes BatchNormalization in float32 even for float64 inputs: its call
    casts to ``backend.result_type(inputs.dtype, "float32")``, which is float32 in Keras's promotion rules. So
    anything that goes through a Keras BatchNormalization agrees to float32 precision only, and is held to the
    float32 tolerances (test_keras_float64_batch_normalization_is_float32 pins the reason)."""
    return "float32" if batch_normalization else dtype


@pytest.fixture(scope="module", autouse=True)
def jax_x64():
    with x64_enabled():
        yield


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    previous = keras.config.floatx()
    keras.config.set_floatx(request.param)
    yield request.param
    keras.config.set_floatx(previous)


def moving_statistics(keras_model_or_values, keras_model=None):
    """The moving means and variances of a Keras model (its non-trainable variables but Dropout's seed state), in
    order, from the model or from a list of non-trainable values returned by stateless_call."""
    if keras_model is None:
        keras_model = keras_model_or_values
        values = [v.value for v in keras_model.non_trainable_variables]
    else:
        values = keras_model_or_values
    return [np.asarray(value) for variable, value in zip(keras_model.non_trainable_variables, values)
            if "moving_" in variable.path]


def randomize(model, rng):
    """Random biases, gamma, beta and moving statistics: more of the arithmetic is exercised than at the defaults."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            for parameter, (low, high) in zip((layer.gamma, layer.beta), ((0.5, 1.5), (-0.3, 0.3))):
                if parameter is not None:
                    parameter.value[...] = rng.uniform(low, high, parameter.shape)
            layer.moving_mean.value[...] = rng.uniform(-0.5, 0.5, layer.moving_mean.shape)
            layer.moving_variance.value[...] = rng.uniform(0.5, 2.0, layer.moving_variance.shape)
        elif layer.parameters():
            layer.bias.value[...] = rng.uniform(-0.1, 0.1, layer.bias.shape)


# ---------------------------------------------------------------------------------------------- BatchNormalization
@pytest.mark.parametrize("shape, settings", [
    ((6,), {}),
    ((4, 3, 5), {}),
    ((3, 3, 2), dict(momentum=0.9, epsilon=1e-5)),
    ((5,), dict(center=False)),
    ((5,), dict(scale=False)),
], ids=["dense", "nhwc", "nhwc-momentum-0.9", "no-beta", "no-gamma"])
def test_batch_normalization_alone(shape, settings, dtype):
    key = tolerance_key(dtype)
    rng = np.random.default_rng(11)
    model = minicnn.Sequential([BatchNormalization(**settings)], input_shape=shape, dtype=dtype)
    randomize(model, rng)
    layer = model.layers[0]
    keras_model = to_keras(model)
    trainable = [v.value for v in keras_model.trainable_variables]
    non_trainable = [v.value for v in keras_model.non_trainable_variables]

    @jax.jit
    def training_call(trainable, non_trainable, x, cotangent):
        def output(t, x):
            return keras_model.stateless_call(t, non_trainable, x, training=True)
        y, vjp, new_non_trainable = jax.vjp(output, trainable, x, has_aux=True)
        return y, vjp(cotangent), new_non_trainable

    inference = jax.jit(lambda t, nt, x: keras_model.stateless_call(t, nt, x, training=False)[0])
    for step in range(3):
        x = (rng.standard_normal((6, *shape)) * 2 + 0.5).astype(dtype)
        assert_close(layer(x, training=False), inference(trainable, non_trainable, x), key, "forward",
                     f"output at inference, call {step}")
        cotangent = rng.standard_normal((6, *shape)).astype(dtype)
        y, cache = layer.forward(x, True)
        grads = [np.zeros_like(p.value) for p in layer.parameters()]
        dx = layer.backward(cotangent, cache, grads)
        k_y, (k_grads, k_dx), non_trainable = training_call(trainable, non_trainable, jnp.asarray(x),
                                                            jnp.asarray(cotangent))
        check_dtype(k_y, dtype)
        assert_close(y, k_y, key, "forward", f"output in training, call {step}")
        assert_close(dx, k_dx, key, "grad", f"input gradient in training, call {step}")
        for parameter, g, k_g in zip(layer.parameters(), grads, k_grads):
            assert_close(g, k_g, key, "grad", f"gradient of {parameter.name}, call {step}")
        for state, k_state in zip(layer.state(), moving_statistics(non_trainable, keras_model)):
            assert_close(state.value, k_state, key, "forward", f"{state.name} after call {step}")


def test_keras_float64_batch_normalization_is_float32():
    """Why float64 comparisons through BatchNormalization use float32 tolerances: Keras's float64 layer gives
    exactly what it gives on float32 inputs (up to the final cast), and minicnn's float64 layer is closer to the
    exact float64 formula."""
    from keras.src import backend

    assert backend.result_type("float64", "float32") == "float32"
    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 5))
    keras_layer = keras.layers.BatchNormalization(dtype="float64")
    keras_layer.build((None, 5))
    keras_layer.set_weights([rng.uniform(0.5, 1.5, 5), rng.uniform(-0.3, 0.3, 5), rng.uniform(-0.5, 0.5, 5),
                             rng.uniform(0.5, 2.0, 5)])
    gamma, beta, mean, variance = keras_layer.get_weights()
    exact = (x - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    k_y = np.asarray(keras_layer(x, training=False))
    assert k_y.dtype == np.float64 and 1e-9 < np.max(np.abs(k_y - exact)) < 1e-5
    model = minicnn.Sequential([BatchNormalization()], input_shape=(5,), dtype="float64")
    model.set_weights([gamma, beta, mean, variance])
    assert np.max(np.abs(model.predict(x) - exact)) < 1e-14


# ---------------------------------------------------------------------------------------------- every new layer
def toolkit_model(dtype, engine="fast", rate=0.0, batch_normalization=True, seed=0):
    """Every new layer, with l1/l2/l1_l2 regularizers (``batch_normalization=False``: without BatchNormalization,
    for float64 comparisons at float64 precision). Dropout rate 0 unless asked: then both sides compute the same."""
    norm = (lambda: [BatchNormalization()]) if batch_normalization else (lambda: [])
    layers = [Conv2D(4, 3, padding="same", kernel_regularizer=l2(0.01), bias_regularizer=l1(0.02)), *norm(), ReLU(),
              AveragePooling2D(2, padding="same"), Dropout(rate, seed=1),
              Conv2D(5, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(),
              Dense(6, kernel_regularizer=l1_l2(0.01, 0.02), bias_regularizer=l2(0.05)), LeakyReLU(), *norm(),
              Dropout(rate, seed=2), Dense(5, activation="leaky_relu", kernel_regularizer="l2"),
              Dense(3), Softmax()]
    model = minicnn.Sequential(layers, input_shape=(9, 9, 2), dtype=dtype, seed=seed, engine=engine)
    randomize(model, np.random.default_rng(seed + 100))
    return model


def varied_input(rng, count, dtype):
    """Images that differ in contrast and brightness per sample and channel: pure noise averages out in the pools,
    every sample then drives each unit to the same side of its ReLU, and the normalization after cancels the
    gradients of the biases before it (which the comparison would then measure as noise)."""
    x = rng.standard_normal((count, 9, 9, 2)) * rng.uniform(0.2, 3.0, (count, 1, 1, 1))
    return (x + rng.normal(0.0, 1.5, (count, 1, 1, 2))).astype(dtype)


class KerasToolkitTwin:
    """The Keras model of a minicnn model and jitted functions of its variables: (loss with the penalties,
    probabilities, new non-trainable values) and their gradients in training; probabilities at inference."""

    def __init__(self, model):
        self.dtype = model.dtype.name
        self.model = to_keras(model, fuse_activations=False)
        loss_fn = keras_loss(False, self.dtype)

        def loss(trainable, non_trainable, x, labels):
            outputs, new_non_trainable, losses = self.model.stateless_call(trainable, non_trainable, x, training=True,
                                                                          return_losses=True)
            assert len(losses) == 5  # the five penalties of toolkit_model
            return loss_fn(labels, outputs) + sum(losses), (outputs, new_non_trainable)

        self.loss_and_gradients = jax.jit(jax.value_and_grad(loss, argnums=(0, 2), has_aux=True))
        self.inference = jax.jit(lambda t, nt, x: self.model.stateless_call(t, nt, x, training=False)[0])

    def variables(self):
        return ([v.value for v in self.model.trainable_variables], [v.value for v in self.model.non_trainable_variables])


@pytest.mark.parametrize("batch_normalization", [True, False], ids=["with-bn", "without-bn"])
@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_toolkit_model_outputs_loss_gradients_and_moving_statistics(engine, batch_normalization, dtype):
    key = tolerance_key(dtype, batch_normalization)
    rng = np.random.default_rng(13)
    model = toolkit_model(dtype, engine, batch_normalization=batch_normalization)
    twin = KerasToolkitTwin(model)
    trainable, non_trainable = twin.variables()
    for step in range(3):
        x = varied_input(rng, 6, dtype)
        y = rng.integers(0, 3, 6)
        assert_close(model.predict(x), twin.inference(trainable, non_trainable, x), key, "forward",
                     f"probabilities at inference, call {step}")
        loss_sum, _, dx = model.loss_and_gradients(x, y, need_input_grad=True)
        (k_loss, (k_outputs, non_trainable)), (k_grads, k_dx) = twin.loss_and_gradients(
            trainable, non_trainable, jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32))
        check_dtype(k_loss, dtype)
        assert model.regularization_penalty() > 0.05 * float(k_loss)  # the penalties weigh in the comparison
        assert_close(loss_sum / len(x), k_loss, key, "loss", f"loss with the penalties, call {step}")
        assert len(k_grads) == len(model.parameters())
        for index, (parameter, k_g) in enumerate(zip(model.parameters(), k_grads)):
            if parameter.name == "bias":
                # A bias before a BatchNormalization (directly, or through units all on one side of their (leaky)
                # ReLU for the whole batch) has a data gradient of exactly 0: the normalization subtracts it again.
                # What is left is its penalty's gradient plus rounding noise: measured in units of the larger of
                # its own and its kernel's gradient.
                scale = max(np.max(np.abs(np.asarray(k_g))), np.max(np.abs(np.asarray(k_grads[index - 1]))))
                error = np.max(np.abs(parameter.grad - np.asarray(k_g))) / scale
                assert error <= TOLERANCES[key]["grad"], f"gradient of {parameter.name} {parameter.shape}: {error:.2e}"
                continue
            assert_close(parameter.grad, k_g, key, "grad", f"gradient of {parameter.name} {parameter.shape}")
        assert_close(dx, k_dx, key, "grad", "input gradient")
        states = moving_statistics(non_trainable, twin.model)
        assert len(states) == len(model.states())
        for state, k_state in zip(model.states(), states):
            assert_close(state.value, k_state, key, "forward", f"{state.name} after call {step}")


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_toolkit_model_training(engine, dtype):
    """TRAIN_STEPS Adam steps, same batches, same order: loss curves (with the penalties), final weights and moving
    statistics. Dropout rate 0 (Keras's masks are its own)."""
    rng = np.random.default_rng(14)
    model = toolkit_model(dtype, engine)
    keras_model = to_keras(model)
    keras_model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss=keras_loss(False, dtype))
    model.compile(optimizer=Adam(learning_rate=1e-2))
    batches = [(varied_input(rng, 8, dtype), rng.integers(0, 3, 8)) for _ in range(5)]
    # float32: weights are compared after 5 steps, not 20. Adam steps on rounding noise (see below) make a float32
    # run drift from Keras's with some BLAS kernels (Haswell's: 2.8e-3 on a kernel after 20 steps, p99).
    compare_after = TRAIN_STEPS if dtype == "float64" else 5
    losses, k_losses = [], []
    for step in range(TRAIN_STEPS):
        x, y = batches[step % len(batches)]
        losses.append(model.train_step(np.ascontiguousarray(x, dtype=model.dtype), y)[0])
        k_losses.append(float(keras_model.train_on_batch(x.astype(dtype), y.astype(np.int32))))
        if step + 1 == compare_after:
            weights = [parameter.value.copy() for parameter in model.parameters()]
            k_weights = [np.array(v.value) for v in keras_model.trainable_variables]
            states = [state.value.copy() for state in model.states()]
            k_states = [np.array(k_state) for k_state in moving_statistics(keras_model)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), "the run should learn something"
    key = tolerance_key(dtype)
    if dtype == "float32":
        # In a float32 model the biases right before a BatchNormalization take Adam steps on rounding noise (see
        # below), and with other BLAS kernels those move later losses by a few 1e-4 of their scale (measured with
        # Haswell's: 2.7e-4; SkylakeX's: under 5e-5).
        error = scaled_error(losses, k_losses)
        assert error <= 1e-3, f"loss curve over {TRAIN_STEPS} steps (float32): scaled error {error:.3e} > 1e-3"
    else:
        assert_close(losses, k_losses, key, "train_loss", f"loss curve over {TRAIN_STEPS} steps")
    for parameter, value, k_w in zip(model.parameters(), weights, k_weights):
        check_dtype(k_w, dtype)
        if parameter.name == "bias":
            # Biases whose data gradient is 0 plus rounding noise (see above) take Adam steps of up to the learning
            # rate on that noise, with signs that differ between the two sides: bounded by one step's size.
            assert np.max(np.abs(value - k_w)) < 1e-2, f"bias after {compare_after} steps"
            continue
        if dtype == "float32":  # (Haswell's kernels: p99 2.5e-4 after 5 steps; SkylakeX's, Sandybridge's: < 2e-4)
            p99, largest = scaled_error(value, k_w, percentile=99), scaled_error(value, k_w)
            assert p99 <= 1e-3 and largest <= 5e-3, f"{parameter.name} after 5 steps: p99 {p99:.2e}, max {largest:.2e}"
            continue
        assert_close(value, k_w, key, "train_weights_p99", f"{parameter.name} after {compare_after} "
                     "steps, p99", percentile=99)
        assert_close(value, k_w, key, "train_weights", f"{parameter.name} after {compare_after} steps")
    for state, value, k_state in zip(model.states(), states, k_states):
        assert_close(value, k_state, key, "train_weights", f"{state.name} after {compare_after} steps")


def test_a_model_trained_in_keras_loads_and_predicts_the_same(tmp_path):
    """Keras trains (dropout 0.3 and 0.5, batch normalization, leaky ReLU, average pooling, l2 penalties) and saves a
    .keras file; minicnn loads it and predicts, and evaluates (loss with the penalties), the same."""
    from minicnn.interop import load_keras_model

    rng = np.random.default_rng(15)
    keras.utils.set_random_seed(0)
    regularizer = keras.regularizers.L2(0.01)
    keras_model = keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(6, 3, padding="same", kernel_regularizer=regularizer, bias_regularizer=regularizer),
        keras.layers.BatchNormalization(), keras.layers.ReLU(), keras.layers.AveragePooling2D(2),
        keras.layers.Dropout(0.3), keras.layers.Flatten(), keras.layers.Dense(16, activation="leaky_relu"),
        keras.layers.BatchNormalization(), keras.layers.LeakyReLU(), keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.L1L2(0.001, 0.002))])
    x = rng.random((64, 12, 12, 1)).astype("float32")
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(np.int32) + (x[:, 0, 0, 0] > 0.8)
    keras_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    keras_model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    keras_model.save(tmp_path / "toolkit.keras")
    model = load_keras_model(tmp_path / "toolkit.keras")
    assert [type(layer).__name__ for layer in model.layers].count("Dropout") == 2
    assert model.count_params() == keras_model.count_params()
    assert_close(model.predict(x), keras_model.predict(x, verbose=0), "float32", "forward", "probabilities")
    assert_close(model.evaluate(x, y)[0], keras_model.evaluate(x, y, verbose=0), "float32", "loss",
                 "evaluate's loss with the penalties")

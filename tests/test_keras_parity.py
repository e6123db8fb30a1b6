"""Keras parity: the same model gives the same numbers in minicnn and in Keras 3 (JAX backend), the reference.

For every layer (several configurations each: stride 2 with 'same' padding, asymmetric padding, max-pooling on
odd sizes and on exact ties ...) and for the seed CNN (on tie-free images: keras_reference.tie_free_digits), in
float64 and float32:

* the layer alone: output, and the vector-Jacobian product (input and parameter gradients of sum(R * y));
* the layer inside a small model (layer + Flatten + Dense): outputs, loss, gradient of the mean loss with respect
  to every parameter and to the input;
* one Adam step (Keras: ``optimizer.stateless_apply``), on minicnn's gradients and on Keras's own;
* 20 training steps on identical batches, same order (Keras: ``compile`` + ``train_on_batch``): the loss curves
  and the final weights.

Plus Adam alone over several steps, and the max-pool tie rule checked explicitly on each side.

Every comparison uses ``scaled_error(actual, expected) = max|actual - expected| / max|expected|`` (the largest
difference, in units of the tensor's largest entry) against the tolerance in TOLERANCES, which
docs/keras-parity.md explains. MINICNN_PARITY_LOG=path.json writes every measured error to a file;
MINICNN_PARITY_MEASURE_ONLY=1 records them without failing (to re-measure after an engine change).
"""
from __future__ import annotations

import json
import os

import jax.numpy as jnp  # after keras_reference, which skips this module when JAX is missing
import numpy as np
import pytest
from keras_reference import digit_like_input, jax, keras, scaled_error, tie_free_digits, x64_enabled

import minicnn
from minicnn.interop import to_keras
from minicnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Softmax
from minicnn.optimizers import Adam

pytestmark = pytest.mark.parity  # .ci/run runs these again under each OPENBLAS_CORETYPE

# Tolerances on scaled_error, per dtype and per quantity (see docs/keras-parity.md for the reasons).
TOLERANCES = {
    "float64": {"forward": 1e-13, "loss": 1e-13, "grad": 1e-12, "adam": 1e-14, "adam_update": 1e-12,
                "adam_step": 1e-12, "train_loss": 1e-12, "train_weights_p99": 1e-12, "train_weights": 1e-12},
    "float32": {"forward": 5e-6, "loss": 5e-6, "grad": 1e-5, "adam": 1e-5, "adam_update": 1e-4,
                "adam_step": 5e-5, "train_loss": 5e-5, "train_weights_p99": 2e-4, "train_weights": 1e-3},
}
TRAIN_STEPS = 20
if os.environ.get("MINICNN_PARITY_MEASURE_ONLY"):
    TOLERANCES = {d: {q: 1.0 for q in t} for d, t in TOLERANCES.items()}
MEASURED = []


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def jax_x64():
    """float64 in JAX needs x64 (a global switch): on for this module, then restored. float32 stays float32
    because every array, layer, loss and optimizer gets its dtype explicitly (and the tests check it)."""
    with x64_enabled():
        yield
    if os.environ.get("MINICNN_PARITY_LOG"):
        with open(os.environ["MINICNN_PARITY_LOG"], "w") as file:
            json.dump(MEASURED, file, indent=0)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """The dtype of the test; Keras's floatx follows it, so Keras's own variables (the optimizer's learning rate,
    the compiled loss, train_on_batch's input conversion) have that dtype too."""
    previous = keras.config.floatx()
    keras.config.set_floatx(request.param)
    yield request.param
    keras.config.set_floatx(previous)


# ---------------------------------------------------------------------------------------------- helpers
def assert_close(actual, expected, dtype, quantity, what, percentile=100):
    error = scaled_error(actual, expected, percentile)
    tolerance = TOLERANCES[dtype][quantity]
    MEASURED.append({"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0], "what": what,
                     "dtype": dtype, "quantity": quantity, "error": error, "tolerance": tolerance})
    assert error <= tolerance, f"{what} ({dtype}): scaled error {error:.3e} > tolerance {tolerance:.1e}"
    return error


def ties_input(rng, shape):
    """Small integers: max-pooling windows full of exact ties."""
    return rng.integers(0, 3, size=shape).astype(np.float64)


def relu_input(rng, shape):
    """Normal values with about a fifth set to exactly 0 (where ReLU has no derivative: both use 0)."""
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.2] = 0.0
    return x


def randomize_biases(model, rng, low=-0.1, high=0.1):
    """minicnn initializes biases to zero; random ones exercise more of the arithmetic (and, positive, let the
    gradient flow through tied zero regions of an image)."""
    for layer in model.layers:
        if layer.parameters():
            layer.bias.value[...] = rng.uniform(low, high, size=layer.bias.shape)


def check_dtype(array, dtype):
    assert np.asarray(array).dtype == np.dtype(dtype), f"Keras computed in {np.asarray(array).dtype}, not {dtype}"


def keras_loss(from_logits, dtype):
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, dtype=dtype)


def keras_weights(keras_model):
    return [np.asarray(v.value) for v in keras_model.trainable_variables]


class KerasTwin:
    """The Keras model of a minicnn architecture (to_keras, activations as separate layers) with jitted functions of
    its weights: loss and gradients, and Adam updates. Cached per architecture and dtype, so that models of the
    same architecture share XLA compilations (compiling the seed CNN's gradient takes seconds)."""

    cache = {}

    @classmethod
    def of(cls, model):
        layers = [(entry["class"], sorted((k, str(v)) for k, v in entry["config"].items() if k != "name"))
                  for entry in model.get_config()["layers"]]
        key = (json.dumps(layers), tuple(model.input_shape), model.dtype.name)
        if key not in cls.cache:
            cls.cache[key] = cls(model)
        return cls.cache[key]

    def __init__(self, model):
        self.dtype = model.dtype.name
        self.model = to_keras(model, fuse_activations=False)
        self.ends_with_softmax = model.ends_with_softmax
        # Without the final Softmax: the logits, for Keras's from_logits=True loss. Shares the layers and weights.
        self.logits_model = (keras.Model(self.model.inputs, self.model.layers[-2].output)
                             if self.ends_with_softmax else self.model)
        self.functions = {}

    def loss_and_gradients(self, weights, x, y, from_logits):
        """(mean loss, outputs, gradients of the mean loss w.r.t. every weight, w.r.t. x), all computed by JAX."""
        if from_logits not in self.functions:
            keras_model = self.logits_model if from_logits else self.model
            loss_fn = keras_loss(from_logits, self.dtype)

            def loss(weights, x, labels):
                outputs, _ = keras_model.stateless_call(weights, [], x, training=True)
                return loss_fn(labels, outputs), outputs

            self.functions[from_logits] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
        (value, outputs), (grads, dx) = self.functions[from_logits](
            [jnp.asarray(w, dtype=self.dtype) for w in weights], jnp.asarray(x, dtype=self.dtype),
            jnp.asarray(y, dtype=jnp.int32))
        for array in (value, outputs, dx, *grads):
            check_dtype(array, self.dtype)
        return float(value), np.asarray(outputs), [np.asarray(g) for g in grads], np.asarray(dx)

    def adam_step(self, weights, grads, learning_rate):
        """Weights after one step of a fresh keras.optimizers.Adam (its stateless_apply, jitted)."""
        if ("adam", learning_rate) not in self.functions:
            optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
            optimizer.build(self.model.trainable_variables)
            state = [v.value for v in optimizer.variables]
            self.functions["adam", learning_rate] = (jax.jit(optimizer.stateless_apply), state)
        apply, state = self.functions["adam", learning_rate]
        new_weights, _ = apply(state, [jnp.asarray(g, dtype=self.dtype) for g in grads],
                               [jnp.asarray(w, dtype=self.dtype) for w in weights])
        for array in new_weights:
            check_dtype(array, self.dtype)
        return [np.asarray(w) for w in new_weights]


def minicnn_loss_and_gradients(model, x, y):
    """(mean loss, outputs, gradients of the mean loss w.r.t. every parameter, w.r.t. x)."""
    x = np.ascontiguousarray(x, dtype=model.dtype)
    loss_sum, _, dx = model.loss_and_gradients(x, np.asarray(y, dtype=np.int64), need_input_grad=True)
    grads = [p.grad.copy() for p in model.parameters()]
    return loss_sum / len(x), model.predict(x), grads, dx


def compare_loss_and_gradients(model, x, y, dtype):
    """Forward outputs, loss, and gradients w.r.t. every parameter and the input, minicnn against Keras+JAX."""
    loss, outputs, grads, dx = minicnn_loss_and_gradients(model, x, y)
    twin, weights = KerasTwin.of(model), model.get_weights()
    if model.ends_with_softmax:
        # Probabilities: Keras's from_logits=False loss clips them to [1e-7, 1 - 1e-7]; none is that close here.
        k_loss, k_outputs, k_grads, k_dx = twin.loss_and_gradients(weights, x, y, from_logits=False)
        assert 1e-6 < k_outputs.min() and k_outputs.max() < 1 - 1e-6, "clipping would change Keras's loss"
        assert_close(outputs, k_outputs, dtype, "forward", "probabilities")
        assert_close(loss, k_loss, dtype, "loss", "loss vs from_logits=False")
        for parameter, g, k_g in zip(model.parameters(), grads, k_grads):
            assert_close(g, k_g, dtype, "grad", f"gradient of {parameter.name} vs from_logits=False")
        assert_close(dx, k_dx, dtype, "grad", "input gradient vs from_logits=False")
    k_loss, k_logits, k_grads, k_dx = twin.loss_and_gradients(weights, x, y, from_logits=True)
    if not model.ends_with_softmax:
        assert_close(outputs, k_logits, dtype, "forward", "logits")
    assert_close(loss, k_loss, dtype, "loss", "loss vs from_logits=True")
    assert len(grads) == len(k_grads) == len(model.parameters())
    for parameter, g, k_g in zip(model.parameters(), grads, k_grads):
        assert g.shape == k_g.shape
        assert np.any(g != 0), f"gradient of {parameter.name} is zero: the test would prove nothing"
        assert_close(g, k_g, dtype, "grad", f"gradient of {parameter.name} {parameter.shape}")
    assert_close(dx, k_dx, dtype, "grad", "input gradient")


def compare_adam_step(model, x, y, dtype, learning_rate):
    """One Adam step. (1) Keras's Adam applied to minicnn's own gradients: the optimizers alone, which must agree to
    rounding. (2) Keras's Adam on Keras's gradients: the whole step, where Adam's division by sqrt(v) magnifies
    the float32 differences of tiny gradients (see docs/keras-parity.md)."""
    twin, before = KerasTwin.of(model), model.get_weights()
    model.compile(optimizer=Adam(learning_rate=learning_rate))
    model.train_step(np.ascontiguousarray(x, dtype=model.dtype), np.asarray(y, dtype=np.int64))
    after = model.get_weights()
    grads = [p.grad.copy() for p in model.parameters()]  # those of the step just taken

    same_gradients = twin.adam_step(before, grads, learning_rate)
    _, _, k_grads, _ = twin.loss_and_gradients(before, x, y, from_logits=not model.ends_with_softmax)
    own_gradients = twin.adam_step(before, k_grads, learning_rate)
    for index, (w0, w, k_same, k_own) in enumerate(zip(before, after, same_gradients, own_gradients)):
        assert_close(w, k_same, dtype, "adam", f"parameter {index}, Keras's Adam on minicnn's gradients")
        assert_close(w - w0, k_same - w0, dtype, "adam_update", f"update {index}, Keras's Adam on minicnn's gradients")
        assert_close(w, k_own, dtype, "adam_step", f"parameter {index} after a whole Adam step")


def compare_training(model, batches, dtype, learning_rate):
    """TRAIN_STEPS Adam steps on the same batches in the same order: loss curves and final weights."""
    keras_model = to_keras(model)
    keras_model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                        loss=keras_loss(not model.ends_with_softmax, dtype))
    model.compile(optimizer=Adam(learning_rate=learning_rate))
    losses, k_losses = [], []
    for step in range(TRAIN_STEPS):
        x, y = batches[step % len(batches)]
        losses.append(model.train_step(np.ascontiguousarray(x, dtype=model.dtype), np.asarray(y, dtype=np.int64))[0])
        k_losses.append(float(keras_model.train_on_batch(np.asarray(x, dtype=dtype), np.asarray(y, dtype=np.int32))))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), "the run should learn something"
    assert_close(losses, k_losses, dtype, "train_loss", f"loss curve over {TRAIN_STEPS} steps")
    for index, (w, k_w) in enumerate(zip(model.get_weights(), keras_weights(keras_model))):
        check_dtype(k_w, dtype)
        # Nearly all entries agree closely; the few whose gradients are float32 rounding noise (dead units) may take
        # Adam steps of a different size: hence a bound on the 99th percentile and a looser one on the maximum.
        assert_close(w, k_w, dtype, "train_weights_p99", f"parameter {index} after {TRAIN_STEPS} steps, p99",
                     percentile=99)
        assert_close(w, k_w, dtype, "train_weights", f"parameter {index} after {TRAIN_STEPS} steps")


# ---------------------------------------------------------------------------------------------- the cases
# name: (layer factory, input shape, input generator)
LAYER_CASES = {
    "conv_3x3_valid": (lambda: Conv2D(4, 3), (6, 6, 3), None),
    "conv_3x3_stride2_same_odd": (lambda: Conv2D(4, 3, strides=2, padding="same"), (7, 7, 3), None),
    "conv_3x3_stride2_same_even": (lambda: Conv2D(4, 3, strides=2, padding="same"), (8, 8, 2), None),
    "conv_4x4_same_asymmetric": (lambda: Conv2D(3, 4, padding="same"), (6, 5, 2), None),
    "conv_5x5_stride2_same": (lambda: Conv2D(3, 5, strides=2, padding="same"), (9, 8, 2), None),
    "conv_3x2_strides_2x1_valid": (lambda: Conv2D(3, (3, 2), strides=(2, 1)), (7, 6, 2), None),
    "dense": (lambda: Dense(5), (12,), None),
    "relu_with_exact_zeros": (lambda: ReLU(), (5, 5, 2), relu_input),
    "leaky_relu_with_exact_zeros": (lambda: LeakyReLU(), (5, 5, 2), relu_input),
    "leaky_relu_0.2": (lambda: LeakyReLU(negative_slope=0.2), (7,), None),
    "avgpool_2x2_odd_input": (lambda: AveragePooling2D(2), (5, 5, 3), None),
    "avgpool_3x3_stride2_odd_input": (lambda: AveragePooling2D(3, strides=2), (7, 7, 2), None),
    "avgpool_2x2_same_odd_input": (lambda: AveragePooling2D(2, padding="same"), (5, 7, 2), None),
    "avgpool_3x3_stride2_same_even": (lambda: AveragePooling2D(3, strides=2, padding="same"), (6, 6, 2), None),
    "flatten": (lambda: Flatten(), (3, 4, 2), None),
    "softmax": (lambda: Softmax(), (6,), None),
    "maxpool_2x2_odd_input": (lambda: MaxPool2D(2), (5, 5, 3), None),
    "maxpool_3x3_stride2_odd_input": (lambda: MaxPool2D(3, strides=2), (7, 7, 2), None),
    "maxpool_2x2_same_odd_input": (lambda: MaxPool2D(2, padding="same"), (5, 7, 2), None),
    "maxpool_3x3_stride2_same_even": (lambda: MaxPool2D(3, strides=2, padding="same"), (6, 6, 2), None),
    "maxpool_2x2_ties": (lambda: MaxPool2D(2), (6, 6, 2), ties_input),
    "maxpool_2x2_stride1_ties": (lambda: MaxPool2D(2, strides=1), (5, 5, 2), ties_input),
    "maxpool_2x2_same_odd_ties": (lambda: MaxPool2D(2, padding="same"), (5, 5, 2), ties_input),
}
BATCH = 4
CLASSES = 3


def case_input(case, rng, count):
    _, shape, generator = LAYER_CASES[case]
    return (generator or (lambda rng, shape: rng.standard_normal(shape)))(rng, (count, *shape))


def layer_model(case, dtype, seed=0, engine="fast"):
    """The case's layer followed by [Flatten] + Dense(3): logits for a 3-class loss. (The softmax case is
    Dense(4) + Softmax, a model that ends in probabilities.)"""
    factory, shape, _ = LAYER_CASES[case]
    layer = factory()
    if isinstance(layer, Softmax):
        layers = [Dense(4), layer]
    elif isinstance(layer, (Flatten, Dense)):
        layers = [layer, Dense(CLASSES)]
    else:
        layers = [layer, Flatten(), Dense(CLASSES)]
    model = minicnn.Sequential(layers, input_shape=shape, dtype=dtype, seed=seed, engine=engine)
    randomize_biases(model, np.random.default_rng(seed + 100))
    return model


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_forward_and_vjp(case, dtype):
    """The layer alone: y = layer(x), and the gradients of sum(R * y) w.r.t. x and the parameters (jax.vjp)."""
    factory, shape, _ = LAYER_CASES[case]
    rng = np.random.default_rng(1)
    model = minicnn.Sequential([factory()], input_shape=shape, dtype=dtype)
    randomize_biases(model, rng)
    layer = model.layers[0]
    x = case_input(case, rng, BATCH).astype(dtype)
    y, cache = layer.forward(x, True)
    cotangent = rng.standard_normal(y.shape).astype(dtype)
    grads = [np.zeros_like(p.value) for p in layer.parameters()]
    dx = layer.backward(cotangent, cache, grads, need_input_grad=True)

    keras_model = to_keras(model)
    trainable = [v.value for v in keras_model.trainable_variables]

    @jax.jit
    def output_and_vjp(trainable, x, cotangent):
        y, vjp = jax.vjp(lambda t, x: keras_model.stateless_call(t, [], x)[0], trainable, x)
        return y, *vjp(cotangent)

    k_y, k_grads, k_dx = output_and_vjp(trainable, jnp.asarray(x), jnp.asarray(cotangent))
    check_dtype(k_y, dtype)
    check_dtype(k_dx, dtype)
    assert_close(y, k_y, dtype, "forward", "output")
    assert_close(dx, k_dx, dtype, "grad", "input gradient")
    for parameter, g, k_g in zip(layer.parameters(), grads, k_grads):
        check_dtype(k_g, dtype)
        assert_close(g, k_g, dtype, "grad", f"gradient of {parameter.name}")


@pytest.mark.parametrize("engine", ["fast", "reference"])
@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_model_loss_and_gradients(case, dtype, engine):
    rng = np.random.default_rng(2)
    model = layer_model(case, dtype, engine=engine)
    x = case_input(case, rng, BATCH)
    y = rng.integers(0, model.num_classes, BATCH)
    compare_loss_and_gradients(model, x, y, dtype)


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_model_adam_step(case, dtype):
    rng = np.random.default_rng(3)
    model = layer_model(case, dtype)
    x = case_input(case, rng, BATCH)
    compare_adam_step(model, x, rng.integers(0, model.num_classes, BATCH), dtype, learning_rate=1e-2)


@pytest.mark.parametrize("case", LAYER_CASES)
def test_layer_model_training(case, dtype):
    rng = np.random.default_rng(4)
    model = layer_model(case, dtype)
    batches = [(case_input(case, rng, BATCH), rng.integers(0, model.num_classes, BATCH)) for _ in range(5)]
    compare_training(model, batches, dtype, learning_rate=1e-2)


# ---------------------------------------------------------------------------------------------- the seed CNN
SEED_BATCH = 8


def seed_model(dtype, engine="fast"):
    # fast: the plan (fused Conv+ReLU+MaxPool steps, Winograd, ...); reference: the layer files in order;
    # twins: the fast plan on the kernels' NumPy twins
    model = minicnn.seed_cnn(dtype=dtype, seed=0, engine=engine)
    randomize_biases(model, np.random.default_rng(5), low=-0.02, high=0.05)
    return model


ENGINES = ["fast", "reference", "twins"]


@pytest.mark.parametrize("engine", ENGINES)
def test_seed_cnn_loss_and_gradients(engine, dtype):
    """Forward, loss (against Keras's from_logits=False on probabilities and from_logits=True on logits) and every
    gradient, on tie-free digit-like images (no ReLU input or max-pool window within float32 rounding of a flip,
    so the gradient takes the same route on every BLAS; ties are tested where they are exact, in the layer cases);
    on minicnn's fast engine, the reference engine, and the fast plan on NumPy twins."""
    rng = np.random.default_rng(6)
    model = seed_model(dtype, engine)
    x = tie_free_digits(model, rng, SEED_BATCH)
    compare_loss_and_gradients(model, x, rng.integers(0, 10, SEED_BATCH), dtype)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_seed_cnn_adam_step(engine, dtype):
    rng = np.random.default_rng(7)
    model = seed_model(dtype, engine)
    compare_adam_step(model, tie_free_digits(model, rng, SEED_BATCH), rng.integers(0, 10, SEED_BATCH), dtype,
                      learning_rate=1e-3)


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_seed_cnn_training(engine, dtype):
    """On digit-like images with exact ties: their tied windows see identical image content (black background,
    saturated strokes), so whichever of them rounding makes win, the parameter gradients are the same. (Tie-free
    images would not help here: with every pixel distinct, 20 steps move many more decisions across their
    thresholds, each a chance for float32 rounding to flip one differently; measured: 5e-4 on conv2d's kernel.)"""
    rng = np.random.default_rng(8)
    model = seed_model(dtype, engine)
    batches = [(digit_like_input(rng, SEED_BATCH), rng.integers(0, 10, SEED_BATCH)) for _ in range(4)]
    compare_training(model, batches, dtype, learning_rate=1e-3)


# ---------------------------------------------------------------------------------------------- Adam alone
ADAM_SETTINGS = [dict(learning_rate=1e-3), dict(learning_rate=3e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-6)]


@pytest.mark.parametrize("settings", ADAM_SETTINGS, ids=["keras_defaults", "other_settings"])
def test_adam_matches_keras_on_the_same_gradients(settings, dtype):
    """Five Adam steps on the same gradient sequence (magnitudes from 1e-9 to 10, and exact zeros): minicnn's
    optimizer against keras.optimizers.Adam(...).stateless_apply (jitted). float64: to rounding (XLA's fused
    multiply-adds differ from minicnn's separate multiply and add by an ulp). float32: Keras computes the
    bias correction in float32 (1 - float32(beta_2)**t loses digits to cancellation), minicnn in float64, so the
    step sizes differ by up to 1e-5 relative (see test_adam_float32_step_size_is_the_only_difference)."""
    rng = np.random.default_rng(9)
    model = minicnn.Sequential([Conv2D(4, 3), Flatten(), Dense(5)], input_shape=(5, 5, 2), dtype=dtype)
    shapes = [p.shape for p in model.parameters()]
    weights = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    model.set_weights(weights)
    model.compile(optimizer=Adam(**settings))

    keras_weights_now = [jnp.asarray(w) for w in weights]
    variables = [keras.Variable(w) for w in weights]
    optimizer = keras.optimizers.Adam(**settings)
    optimizer.build(variables)
    state = [v.value for v in optimizer.variables]
    apply = jax.jit(optimizer.stateless_apply)
    for step in range(5):
        grads = [(rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 2, size=shape)).astype(dtype)
                 for shape in shapes]
        grads[1][0] = 0.0
        for parameter, g in zip(model.parameters(), grads):
            parameter.grad[...] = g
        model.optimizer.apply(model.flat_params, model.flat_grads)
        keras_weights_now, state = apply(state, [jnp.asarray(g) for g in grads], keras_weights_now)
        for index, (w, k_w) in enumerate(zip(model.get_weights(), keras_weights_now)):
            check_dtype(k_w, dtype)
            assert_close(w, k_w, dtype, "adam", f"parameter {index} after step {step + 1}")


def test_adam_float32_step_size_is_the_only_difference():
    """In float32, Keras's Adam step equals, bit for bit, minicnn's Adam kernel fed Keras's float32 step size
    alpha = lr * sqrt(1 - b2**t) / (1 - b1**t) (every factor rounded to float32): the update rules are the same,
    only the precision of alpha differs (minicnn computes it in float64, then rounds once). Run eagerly: under
    jax.jit, XLA contracts multiply-adds into FMAs, which moves m, v and the parameters by an ulp or so."""
    from minicnn.kernels.optim import adam_update_numba as adam_update

    rng = np.random.default_rng(10)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    params = rng.standard_normal(1000).astype(np.float32)
    m, v = np.zeros_like(params), np.zeros_like(params)
    variable = keras.Variable(params.copy())
    optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    optimizer.build([variable])
    state = [var.value for var in optimizer.variables]
    apply = optimizer.stateless_apply  # eager, see above
    keras_params = [jnp.asarray(params)]
    f32 = np.float32
    for t in range(1, 6):
        grads = (rng.standard_normal(1000) * 10.0 ** rng.integers(-6, 1, size=1000)).astype(np.float32)
        keras_params, state = apply(state, [jnp.asarray(grads)], keras_params)
        alpha_keras = f32(lr) * np.sqrt(f32(1) - f32(b2) ** f32(t)) / (f32(1) - f32(b1) ** f32(t))
        alpha_minicnn = f32(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
        if t == 1:
            assert abs(alpha_keras / alpha_minicnn - 1) > 1e-6  # the documented difference is real...
        assert abs(alpha_keras / alpha_minicnn - 1) < 2e-5      # ...and small (1e-5 at step 2)
        adam_update(params, grads, m, v, alpha_keras, f32(1 - b1), f32(1 - b2), f32(eps))
        np.testing.assert_array_equal(params, np.asarray(keras_params[0]), err_msg=f"step {t}")
        np.testing.assert_array_equal(m, np.asarray(state[2]), err_msg=f"m after step {t}")
        np.testing.assert_array_equal(v, np.asarray(state[3]), err_msg=f"v after step {t}")


# ---------------------------------------------------------------------------------------------- max-pool ties
TIES = np.array([[1, 1, 0, 2],
                 [1, 0, 2, 2],
                 [3, 0, 5, 1],
                 [0, 3, 1, 5]], dtype=np.float64)
# MaxPool2D(2) on TIES with dy = [[1, 2], [3, 4]]: every window holds a tie; the FIRST maximum in row-major
# window order receives the whole gradient.
TIES_DX = np.array([[1, 0, 0, 2],
                    [0, 0, 0, 0],
                    [3, 0, 4, 0],
                    [0, 0, 0, 0]], dtype=np.float64)
# MaxPool2D(2, strides=1) on a constant 3x3 image, dy = 1: each window sends its gradient to its top-left pixel.
# (A mask-based backward would give [[1, 2, 1], [2, 4, 2], [1, 2, 1]]; splitting evenly, a quarter of that.)
CONSTANT_DX = np.array([[1, 1, 0],
                        [1, 1, 0],
                        [0, 0, 0]], dtype=np.float64)


@pytest.mark.parametrize("pool, image, dy, expected", [
    (MaxPool2D(2), TIES, np.array([[1, 2], [3, 4]]), TIES_DX),
    (MaxPool2D(2, strides=1), np.ones((3, 3)), np.ones((2, 2)), CONSTANT_DX),
], ids=["first_max_wins", "overlapping_windows_constant_image"])
def test_maxpool_ties_route_to_the_first_maximum_in_both(pool, image, dy, expected, dtype):
    """The documented rule, checked on each side separately: minicnn and Keras-JAX (whose max-pool gradient is
    XLA's select_and_scatter_add with a >= comparison, so the first maximum in window order wins) both route a
    window's gradient to its first maximum in row-major order."""
    model = minicnn.Sequential([pool], input_shape=(*image.shape, 1), dtype=dtype)
    x = image[None, :, :, None].astype(dtype)
    cotangent = dy[None, :, :, None].astype(dtype)
    layer = model.layers[0]
    y, cache = layer.forward(x, True)
    dx = layer.backward(cotangent, cache, [], need_input_grad=True)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)

    keras_pool = to_keras(model).layers[0]
    _, vjp = jax.vjp(keras_pool, jnp.asarray(x))
    (k_dx,) = vjp(jnp.asarray(cotangent))
    check_dtype(k_dx, dtype)
    np.testing.assert_array_equal(np.asarray(k_dx)[0, :, :, 0], expected)
    np.testing.assert_array_equal(np.asarray(keras_pool(x)), y)

"""Predictions on a few images (minicnn/fast/small_batch.py): the calling thread, and for one image the dense tail
with its own kernels, against the layer functions (the reference engine) and against the usual path."""
import numpy as np
import pytest

import minicnn
from minicnn.fast import small_batch
from minicnn.fast.engine import NUMBA_KERNELS, NUMPY_TWINS
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU, Softmax

pytestmark = pytest.mark.twins  # .ci/run runs these again under each OPENBLAS_CORETYPE


def tolerance(dtype):
    return {"rtol": 2e-4, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-12}


def models():
    """(name, layers, input shape, the tail's layer types or None): dense tails of every kind, and models without
    one."""
    return [
        ("mlp", [Flatten(), Dense(300, activation="relu"), Dense(40, activation="relu"), Dense(4, activation="softmax")],
         (6, 7, 2), [Flatten, Dense, ReLU, Dense, ReLU, Dense, Softmax]),
        ("leaky", [Flatten(), Dense(13, activation="leaky_relu"), LeakyReLU(0.05), Dense(9), Dropout(0.5), Dense(3)],
         (5, 5, 1), [Dense, Dropout, Dense]),  # a LeakyReLU after a LeakyReLU: the tail starts after it
        ("leaky-tail", [Flatten(), Dense(13), LeakyReLU(0.05), Dense(9, activation="relu"), Dropout(0.5), Dense(3)],
         (5, 5, 1), [Flatten, Dense, LeakyReLU, Dense, ReLU, Dropout, Dense]),
        ("cnn", [Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(5, activation="relu"),
                 Dense(3, activation="softmax")], (9, 8, 1), [Flatten, Dense, ReLU, Dense, Softmax]),
        ("cnn-bn", [Conv2D(4, 3, activation="relu"), BatchNormalization(), Flatten(), Dense(3)], (7, 7, 2),
         [Flatten, Dense]),
        ("no-tail", [Conv2D(3, 3, activation="relu"), Flatten(), ReLU(), Softmax()], (6, 6, 1), None),
    ]


def build(layers, input_shape, dtype, engine):
    model = minicnn.Sequential(layers, input_shape=input_shape, dtype=dtype, seed=11, engine=engine)
    model.build()
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("number", range(len(models())))
def test_small_predictions_equal_the_reference_engine(number, dtype, monkeypatch):
    """1 to 9 images (one image takes the dense tail's kernels; up to MAX_IMAGES the calling thread; 8 and 9 the
    usual split): the fast engine, with its Numba kernels and with their twins, gives the reference engine's
    outputs, and the logits (evaluate) too."""
    monkeypatch.setenv("MINICNN_COLD_START", "0")
    name, layers, input_shape, tail = models()[number]
    fast = build(layers, input_shape, dtype, "fast")
    reference = build(models()[number][1], input_shape, dtype, "reference")  # (the same seed: the same weights)
    np.testing.assert_array_equal(reference.flat_params, fast.flat_params)
    for layer, other in zip(fast.layers, reference.layers):  # (BatchNormalization's moving statistics)
        for key in ("moving_mean", "moving_variance"):
            if hasattr(layer, key):
                getattr(other, key).value[...] = np.linspace(0.5, 1.5, getattr(layer, key).value.size)
                getattr(layer, key).value[...] = getattr(other, key).value
    path = fast._engine.small_batch
    assert ([type(layer) for layer in path.tail_layers] if path.operations is not None else None) == tail, name
    rng = np.random.default_rng(number)
    for images in (1, 2, small_batch.MAX_IMAGES, 8, 9):
        x = rng.standard_normal((images, *input_shape)).astype(dtype)
        expected = reference.predict(x)
        for kernels in (NUMBA_KERNELS, NUMPY_TWINS):
            fast._engine.kernels = kernels
            got = fast.predict(x)
            assert got.shape == expected.shape and got.dtype == expected.dtype
            np.testing.assert_allclose(got, expected, **tolerance(dtype))
            np.testing.assert_allclose(fast._engine.outputs(fast.prepare_inputs(x), logits_only=True),
                                       reference._engine.outputs(x, logits_only=True), **tolerance(dtype))


def test_a_small_prediction_is_a_new_array_each_time(monkeypatch):
    """The engine's buffers are reused: what predict returns must not change at the next call."""
    monkeypatch.setenv("MINICNN_COLD_START", "0")
    model = minicnn.mlp()
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    first = model.predict(x[:1])
    kept = first.copy()
    second = model.predict(x[1:])
    assert first is not second and not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, kept)


def test_one_image_of_an_mlp_leaves_blas_alone(monkeypatch):
    """An MLP's one-image prediction never enters ONE_BLAS_THREAD (its tail makes no BLAS call); a CNN's does."""
    monkeypatch.setenv("MINICNN_COLD_START", "0")
    from minicnn.fast import parallel
    entered = []
    original = parallel._BlasSingleThreaded.__enter__
    monkeypatch.setattr(parallel._BlasSingleThreaded, "__enter__", lambda self: entered.append(1) or original(self))
    x = np.zeros((1, 28, 28, 1), np.float32)
    minicnn.mlp().predict(x)
    assert not entered
    minicnn.lenet5().predict(x)
    assert entered


def test_the_plan_names_the_small_batch_path():
    text = minicnn.mlp().plan(1, print_fn=None)
    assert "at most 7 images" in text and "dense_2 + softmax: one Numba kernel call" in text


def test_a_few_images_of_a_heavy_model_let_blas_use_its_threads(monkeypatch):
    """BLAS stays on one thread for a few images, unless they are SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS of work and the
    machine is not oversubscribed; the numbers are the same either way, and the plan says which."""
    monkeypatch.setenv("MINICNN_COLD_START", "0")
    from minicnn.fast import engine as fast_engine

    used = []
    real = fast_engine.blas_threads
    monkeypatch.setattr(fast_engine, "blas_threads", lambda count: used.append(count) or real(count))
    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: 0.0)
    name, layers, input_shape, _ = models()[3]  # the CNN: 9 x 8 x 1 -> conv 3x3 x 4 filters -> pool -> dense
    model = build(layers, input_shape, "float64", "fast")
    model.threads = 2
    assert small_batch.multiply_adds(model.layers) == 7 * 6 * 9 * 4 + 36 * 5 + 5 * 3  # (conv, 3x3x4 pooled: 36)
    x = np.random.default_rng(3).standard_normal((3, *input_shape))
    expected = model.predict(x)
    assert used == [] and "BLAS on 1 thread(s) for one image (0.0 M multiply-adds, under 20 M" in model.plan(1)
    monkeypatch.setattr(fast_engine, "SMALL_BATCH_BLAS_MIN_MULTIPLY_ADDS", 1_000)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-12)
    np.testing.assert_allclose(model.predict(x[:1]), expected[:1], rtol=1e-12)
    assert used == [2, 2] and "BLAS on 2 thread(s) for one image (0.0 M multiply-adds; load average 0.0" in \
        model.plan(1, print_fn=None)
    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: fast_engine.available_cores() + 5.0)
    model.predict(x)
    assert used == [2, 2]

"""The fast execution path (minicnn/execution.py) against the layer-by-layer path: same outputs, loss, gradients
and Adam steps, with fused kernels, on one thread or two."""
import numpy as np
import pytest

import minicnn
from minicnn import execution
from minicnn.execution import ConvStep, DenseStep, LayerStep
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU

pytestmark = pytest.mark.twins  # .ci/run runs these again under each OPENBLAS_CORETYPE


def small_model(dtype, **settings):
    """Odd sizes, stride 2, "same" padding, overlapping pools, a conv without ReLU (by Winograd), a lone ReLU and
    pool."""
    layers = [Conv2D(16, 3, strides=2, padding="same", activation="relu"), MaxPool2D(3, strides=2, padding="same"),
              Conv2D(4, 3, padding="same"), MaxPool2D(2),  # 16 channels in: Winograd, 7x6 "same"
              Conv2D(6, (2, 3), activation="relu"),
              MaxPool2D(1), ReLU(),
              Flatten(), Dense(7, activation="relu"), Dense(5), ReLU(), Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(25, 21, 3), dtype=dtype, seed=3, **settings)


def odd_model(dtype, **settings):
    """Pools that drop the last row/column (the fast path then never computes those outputs), by im2col and by
    Winograd, with and without padding."""
    layers = [Conv2D(16, 3, activation="relu"), MaxPool2D(2),                  # 9x9 -> 7x7 -> 3x3 (row 6 unused)
              Conv2D(5, 3, padding="same", activation="relu"), MaxPool2D(2),   # Winograd: 3x3 -> 1x1 (one tile)
              Flatten(), Dense(4, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(9, 9, 2), dtype=dtype, seed=4, **settings)


def gray_model(dtype, **settings):
    """Grayscale input: the first layer takes the one-channel path (kernels/single_channel.py), "same" padded;
    a second one-channel conv, "valid", on odd sizes (the last row and column go unread by its pool)."""
    layers = [Conv2D(8, 3, padding="same", activation="relu"), MaxPool2D(2),   # 10x12 -> 5x6
              Conv2D(1, 1), Conv2D(6, 3, activation="relu"), MaxPool2D(2),     # 1 channel again: 5x6 -> 3x4 -> 1x2
              Flatten(), Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(10, 12, 1), dtype=dtype, seed=5, **settings)


def dense_model(dtype, **settings):
    """No convolutions: training lets BLAS split its products instead of splitting the batch over threads."""
    layers = [Flatten(), Dense(300, activation="relu"), Dense(40, activation="relu"), Dense(4, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(6, 7, 2), dtype=dtype, seed=6, **settings)


def seed_model(dtype, **settings):
    model = minicnn.seed_cnn(dtype=dtype)
    model.fuse = settings.get("fuse", True)
    model.threads = settings.get("threads")
    return model


MODELS = {"seed": (seed_model, (28, 28, 1), 10), "small": (small_model, (25, 21, 3), 3),
          "odd": (odd_model, (9, 9, 2), 4), "gray": (gray_model, (10, 12, 1), 3),
          "dense": (dense_model, (6, 7, 2), 4)}


def data(input_shape, classes, count, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, *input_shape)).astype(dtype), rng.integers(0, classes, count)


def tolerance(dtype):
    return {"rtol": 2e-4, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-12}


def test_steps_group_the_seed_cnn():
    steps = minicnn.seed_cnn()._engine.steps
    assert [type(step) for step in steps] == [ConvStep] * 3 + [LayerStep] + [DenseStep] * 3 + [LayerStep]
    assert all(step.relu is not None and step.pool is not None for step in steps[:3])
    assert [step.index for step in steps] == [0, 3, 6, 9, 10, 12, 14, 15]


def test_only_the_outputs_a_pool_reads_are_computed():
    first, second = odd_model("float32")._engine.steps[:2]
    assert (first.out_h, first.out_w, first.winograd) == (6, 6, False)
    assert (second.out_h, second.out_w, second.winograd) == (2, 2, True)


def test_steps_group_the_small_model():
    steps = small_model("float32")._engine.steps
    assert [getattr(step, "winograd", None) for step in steps[:3]] == [False, True, False]
    kinds = [(type(step).__name__, [type(layer).__name__ for layer in step.layers]) for step in steps]
    assert kinds == [("ConvStep", ["Conv2D", "ReLU", "MaxPool2D"]), ("ConvStep", ["Conv2D", "MaxPool2D"]),
                     ("ConvStep", ["Conv2D", "ReLU", "MaxPool2D"]), ("LayerStep", ["ReLU"]),
                     ("LayerStep", ["Flatten"]), ("DenseStep", ["Dense", "ReLU"]), ("DenseStep", ["Dense", "ReLU"]),
                     ("DenseStep", ["Dense"]), ("LayerStep", ["Softmax"])]


def test_one_channel_convolutions_take_their_own_path():
    assert [step.single_channel for step in minicnn.seed_cnn()._engine.steps[:3]] == [True, False, False]
    steps = gray_model("float32")._engine.steps
    assert [getattr(step, "single_channel", None) for step in steps[:3]] == [True, False, True]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["seed", "small", "odd", "gray", "dense"])
@pytest.mark.parametrize("winograd_min_tiles", [1, execution.WINOGRAD_MIN_TILES])
def test_fused_equals_layer_by_layer(name, dtype, winograd_min_tiles, monkeypatch):
    """(With winograd_min_tiles=1 every layer that can take the Winograd path takes it, even on 11 images.)"""
    monkeypatch.setattr(execution, "WINOGRAD_MIN_TILES", winograd_min_tiles)
    build, input_shape, classes = MODELS[name]
    x, y = data(input_shape, classes, 11, dtype)
    plain = build(dtype, fuse=False, threads=1)
    fast = build(dtype, fuse=True, threads=1)
    tol = tolerance(dtype)

    np.testing.assert_allclose(fast.predict(x), plain.predict(x), **tol)
    np.testing.assert_allclose(fast.forward(x), plain.predict(x), **tol)

    loss_plain, correct_plain, dx_plain = plain.loss_and_gradients(x, y, need_input_grad=True)
    loss_fast, correct_fast, dx_fast = fast.loss_and_gradients(x, y, need_input_grad=True)
    assert loss_fast == pytest.approx(loss_plain, rel=1e-6 if dtype == "float32" else 1e-12)
    assert correct_fast == correct_plain
    np.testing.assert_allclose(dx_fast, dx_plain, **tol)
    for p_fast, p_plain in zip(fast.parameters(), plain.parameters()):
        scale = np.abs(p_plain.grad).max() + 1e-30
        np.testing.assert_allclose(p_fast.grad / scale, p_plain.grad / scale, **tol)

    fast.loss_and_gradients(x, y, need_input_grad=False)  # (a first layer then skips its input gradient)
    for p_fast, p_plain in zip(fast.parameters(), plain.parameters()):
        scale = np.abs(p_plain.grad).max() + 1e-30
        np.testing.assert_allclose(p_fast.grad / scale, p_plain.grad / scale, **tol)

    one_hot = np.eye(classes)[y]
    loss_hot, _, _ = fast.loss_and_gradients(x, one_hot)
    assert loss_hot == pytest.approx(loss_plain, rel=1e-6)

    for model in (plain, fast):
        model.compile(minicnn.optimizers.Adam(1e-2))
    for _ in range(3):
        assert fast.train_step(x, y)[0] == pytest.approx(plain.train_step(x, y)[0], rel=1e-5)
    # Adam divides by sqrt(v): where a gradient is tiny, float32 rounding moves a weight by a visible fraction
    # of its step (here 3 steps of at most 0.01; measured up to 2.5e-4 over 20 input seeds). Allow 1e-3.
    step_tolerance = {"rtol": 0, "atol": 1e-3} if dtype == "float32" else tol
    np.testing.assert_allclose(fast.flat_params, plain.flat_params, **step_tolerance)
    # (v of a nearly dead filter, 1e-8, moves by 1.5% when those weight differences flip one of its ReLUs: an
    # absolute tolerance at the scale of v, as for the gradients above)
    np.testing.assert_allclose(fast.optimizer.v, plain.optimizer.v, rtol=1e-3, atol=1e-3 * plain.optimizer.v.max())
    assert fast.evaluate(x, y) == pytest.approx(plain.evaluate(x, y), rel=1e-5)


def test_models_without_convolutions_let_blas_split_training():
    assert dense_model("float32")._engine.blas_splits_training
    assert not any(MODELS[name][0]("float32")._engine.blas_splits_training for name in ("seed", "small", "gray"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["seed", "small", "gray", "dense"])
@pytest.mark.parametrize("fuse", [True, False])
def test_one_thread_equals_two(name, dtype, fuse):
    build, input_shape, classes = MODELS[name]
    x, y = data(input_shape, classes, 20, dtype, seed=1)
    one = build(dtype, fuse=fuse, threads=1).compile("adam")
    two = build(dtype, fuse=fuse, threads=2).compile("adam")
    assert len(execution.split(len(x), two.threads)) == 2
    for _ in range(3):
        loss_one, correct_one = one.train_step(x, y)
        loss_two, correct_two = two.train_step(x, y)
        assert loss_two == pytest.approx(loss_one, rel=1e-6) and correct_two == correct_one
    # float32: split batches round differently, which can flip a near-tied ReLU or pool decision and Adam then
    # moves a few weights apart (seen: 4.3e-5 after 3 steps of at most 1e-3, another input seed, Haswell kernels)
    step_tolerance = {"rtol": 0, "atol": 2e-4} if dtype == "float32" else tolerance(dtype)
    np.testing.assert_allclose(two.flat_params, one.flat_params, **step_tolerance)
    np.testing.assert_allclose(two.predict(x), one.predict(x), **tolerance(dtype))


def test_numpy_twins_on_the_fused_path():
    x, y = data((25, 21, 3), 3, 6, "float64")
    model = small_model("float64", threads=1)
    loss, _, dx = model.loss_and_gradients(x, y, need_input_grad=True)
    grads = model.flat_grads.copy()
    with minicnn.use_kernels("numpy"):
        loss_numpy, _, dx_numpy = model.loss_and_gradients(x, y, need_input_grad=True)
    assert loss_numpy == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(dx_numpy, dx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.flat_grads, grads, rtol=1e-10, atol=1e-14)


def test_batch_sizes_change_between_calls():
    """Reused buffers grow and shrink with the batch (fit's last batch is smaller; predict after fit)."""
    x, y = data((25, 21, 3), 3, 23, "float64", seed=2)
    fast, plain = small_model("float64", threads=2), small_model("float64", fuse=False)
    for count in (23, 5, 1, 16):
        np.testing.assert_allclose(fast.predict(x[:count]), plain.predict(x[:count]), rtol=1e-10)
        loss, correct, _ = fast.loss_and_gradients(x[:count], y[:count])
        assert loss == pytest.approx(plain.loss_and_gradients(x[:count], y[:count])[0], rel=1e-10)
    assert fast.predict(x[:0]).shape == (0, 3)


def test_fit_on_the_fast_path_learns():
    x, y = data((25, 21, 3), 3, 64, "float32", seed=3)
    x[np.arange(64), y * 5, :, 0] += 2.0  # the class is a bright row: easy to learn
    model = small_model("float32").compile(minicnn.optimizers.Adam(1e-2))
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.filterwarnings("ignore:invalid value")
def test_non_finite_loss_stops_before_the_update():
    x, y = data((28, 28, 1), 10, 8, "float32")
    model = minicnn.seed_cnn().compile("adam")
    model.layers[-2].kernel.value[0, 0] = np.inf
    before = model.flat_params.copy()
    with pytest.raises(minicnn.NonFiniteLossError):
        model.train_step(x, y)
    np.testing.assert_array_equal(model.flat_params, before)


def test_settings(monkeypatch):
    assert execution.split(10, 2) == [(0, 5), (5, 10)]
    assert execution.split(7, 2) == [(0, 7)]  # too few images for two threads
    assert execution.split(3, 4, minimum=1) == [(0, 1), (1, 2), (2, 3)]
    monkeypatch.setenv("MINICNN_THREADS", "3")
    assert execution.resolve_threads(None) == 3
    assert execution.resolve_threads(1) == 1
    monkeypatch.delenv("MINICNN_THREADS")
    assert execution.resolve_threads(None) == min(2, execution.available_cores())
    monkeypatch.setenv("MINICNN_FUSE", "0")
    assert minicnn.seed_cnn().fuse is False
    monkeypatch.setenv("MINICNN_FUSE", "1")
    assert minicnn.Sequential([Flatten(), Dense(2)], input_shape=(3,)).fuse is True
    with pytest.raises(ValueError):
        execution.resolve_threads(0)


def test_blas_is_restored_after_a_step():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    for build, input_shape, classes in (MODELS["seed"], MODELS["dense"]):  # (BLAS held to 1 thread; set to 2)
        model = build("float32", threads=2).compile("adam")
        x, y = data(input_shape, classes, 8, "float32")
        model.train_step(x, y)
        model.predict(x)
        after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        assert after == before


_FORKED = {}


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_threads_work_in_a_forked_child():
    """A child forked after training has none of the parent's worker threads: the pool must be made anew."""
    import multiprocessing
    x, y = data((28, 28, 1), 10, 16, "float32")
    model = minicnn.seed_cnn().compile("adam")
    model.threads = 2
    model.train_step(x, y)  # the parent's worker thread exists now
    _FORKED.update(model=model, x=x, y=y)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        loss = pool.apply_async(_one_step_in_child).get(timeout=120)
    assert np.isfinite(loss)


def _one_step_in_child():
    return _FORKED["model"].train_step(_FORKED["x"], _FORKED["y"])[0]

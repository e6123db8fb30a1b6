"""The fast engine (minicnn/fast/) against the reference engine (the layer files, in order): the same outputs,
loss, gradients and Adam steps, for whole models, for each fused step against the composition of the layer
functions it replaces, on one thread or two."""
import numpy as np
import pytest

import minicnn
from minicnn.fast import parallel, plan
from minicnn.fast.engine import NUMBA_KERNELS, NUMPY_TWINS, FastEngine
from minicnn.fast.parallel import Workspace
from minicnn.fast.plan import ConvStep, DenseStep, KernelStep, LayerStep, build_steps, choose_conv_algorithm
from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.layers.conv2d import conv2d_backward, conv2d_forward
from minicnn.layers.dense import dense_backward, dense_forward
from minicnn.layers.maxpool2d import maxpool2d_backward, maxpool2d_forward
from minicnn.layers.relu import relu_backward, relu_forward

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


def lenet_model(dtype, **settings):
    """One-channel convolutions other than 3x3 take the row-by-row path (kernels/single_channel.py, KxK): a 5x5
    "same" first layer as LeNet-5's on odd sizes (its pool leaves the last row unread), then a 4x4 "valid" one."""
    layers = [Conv2D(4, 5, padding="same", activation="relu"), MaxPool2D(2),   # 13x11 -> 6x5
              Conv2D(1, 1), Conv2D(3, 4, activation="relu"), MaxPool2D(2),     # 6x5 -> 3x2 -> 1x1
              Flatten(), Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(13, 11, 1), dtype=dtype, seed=7, **settings)


def dense_model(dtype, **settings):
    """No convolutions: training lets BLAS split its products instead of splitting the batch over threads."""
    layers = [Flatten(), Dense(300, activation="relu"), Dense(40, activation="relu"), Dense(4, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(6, 7, 2), dtype=dtype, seed=6, **settings)


def seed_model(dtype, **settings):
    return minicnn.seed_cnn(dtype=dtype, **settings)


MODELS = {"seed": (seed_model, (28, 28, 1), 10), "small": (small_model, (25, 21, 3), 3),
          "odd": (odd_model, (9, 9, 2), 4), "gray": (gray_model, (10, 12, 1), 3),
          "dense": (dense_model, (6, 7, 2), 4), "lenet": (lenet_model, (13, 11, 1), 3)}


def data(input_shape, classes, count, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, *input_shape)).astype(dtype), rng.integers(0, classes, count)


def tolerance(dtype):
    return {"rtol": 2e-4, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-12}


def algorithms(model, images):
    return [choose_conv_algorithm(step.geometry, images)[0] for step in build_steps(model.layers)
            if isinstance(step, ConvStep)]


def test_steps_group_the_seed_cnn():
    steps = build_steps(minicnn.seed_cnn().layers)
    assert [type(step) for step in steps] == [ConvStep] * 3 + [LayerStep] + [DenseStep] * 3 + [LayerStep]
    assert all([type(layer) for layer in step.layers] == [Conv2D, ReLU, MaxPool2D] for step in steps[:3])
    assert [step.index for step in steps] == [0, 3, 6, 9, 10, 12, 14, 15]
    # a thread's half of a batch of 32: 16 images; the third layer has 1 tile per image, too few for Winograd
    assert algorithms(minicnn.seed_cnn(), 16) == ["single-channel", "winograd", "im2col"]
    assert algorithms(minicnn.seed_cnn(), 64) == ["single-channel", "winograd", "winograd"]


def test_the_plan_names_the_algorithm_of_every_layer_and_why():
    text = minicnn.seed_cnn().plan(32, print_fn=None)
    assert "batch 32 over 2 thread(s)" in text or "batch 32 over 1 thread(s)" in text
    lines = text.splitlines()[1:]
    assert lines[0].startswith("conv2d + relu + maxpool2d") and "single-channel+relu+pool" in lines[0]
    assert "winograd+relu+pool" in lines[1] and "64 channels" in lines[1]
    assert "(the layer's own function)" in lines[3]
    assert "plan" not in minicnn.seed_cnn(engine="reference").plan(32, print_fn=None).splitlines()[1]
    assert "minicnn/layers/conv2d.py" in minicnn.seed_cnn(engine="reference").plan(32, print_fn=None)
    assert "winograd+relu+pool" in minicnn.seed_cnn().summary(print_fn=None)


def test_only_the_outputs_a_pool_reads_are_computed():
    first, second = [step.geometry for step in build_steps(odd_model("float32").layers)[:2]]
    assert (first.out_h, first.out_w, first.winograd_fits) == (6, 6, False)
    assert (second.out_h, second.out_w, second.winograd_fits) == (2, 2, True)


def test_steps_group_the_small_model():
    model = small_model("float32")
    assert algorithms(model, 11) == ["im2col", "winograd", "im2col"]
    kinds = [(type(step).__name__, [type(layer).__name__ for layer in step.layers]) for step in build_steps(model.layers)]
    assert kinds == [("ConvStep", ["Conv2D", "ReLU", "MaxPool2D"]), ("ConvStep", ["Conv2D", "MaxPool2D"]),
                     ("ConvStep", ["Conv2D", "ReLU", "MaxPool2D"]), ("KernelStep", ["ReLU"]),
                     ("LayerStep", ["Flatten"]), ("DenseStep", ["Dense", "ReLU"]), ("DenseStep", ["Dense", "ReLU"]),
                     ("DenseStep", ["Dense"]), ("LayerStep", ["Softmax"])]


def test_one_channel_convolutions_take_their_own_path():
    assert algorithms(gray_model("float32"), 8)[:3] == ["single-channel", "im2col", "single-channel"]
    assert algorithms(lenet_model("float32"), 8)[:3] == ["single-channel-rows", "im2col", "single-channel-rows"]
    assert "single-channel-rows+relu+pool" in minicnn.lenet5().plan(32, print_fn=None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["seed", "small", "odd", "gray", "dense", "lenet"])
@pytest.mark.parametrize("winograd_min_tiles", [1, plan.WINOGRAD_MIN_TILES])
def test_fast_engine_equals_reference_engine(name, dtype, winograd_min_tiles, monkeypatch):
    """(With winograd_min_tiles=1 every layer that can take the Winograd path takes it, even on 11 images.)"""
    monkeypatch.setattr(plan, "WINOGRAD_MIN_TILES", winograd_min_tiles)
    build, input_shape, classes = MODELS[name]
    x, y = data(input_shape, classes, 11, dtype)
    plain = build(dtype, engine="reference", threads=1)
    fast = build(dtype, engine="fast", threads=1)
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
    if dtype == "float32":
        # Adam divides by sqrt(v): where a gradient is float32 rounding noise, or a near-tied pool decision flips
        # (1 of 40 seeds x kernel choices), a weight's step can differ by up to the whole step, 0.01, each side,
        # every step. So: 99% of the weights within 1e-4, every weight within 2 x 3 steps x 0.01.
        difference = np.abs(fast.flat_params - plain.flat_params)
        assert np.percentile(difference, 99) <= 1e-4 and difference.max() <= 2 * 3 * 1e-2
    else:
        np.testing.assert_allclose(fast.flat_params, plain.flat_params, **tol)
    # (v of a nearly dead filter, 1e-8, moves by 1.5% when those weight differences flip one of its ReLUs: an
    # absolute tolerance at the scale of v, as for the gradients above)
    v_tolerance = 1e-3 * plain.optimizer.v.max() if dtype == "float32" else 1e-12
    np.testing.assert_allclose(fast.optimizer.v, plain.optimizer.v, rtol=1e-3, atol=v_tolerance)
    assert fast.evaluate(x, y) == pytest.approx(plain.evaluate(x, y), rel=1e-5)


def test_models_without_convolutions_let_blas_split_the_batch(monkeypatch):
    from minicnn.fast import engine as fast_engine

    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: 0.5)
    assert FastEngine(dense_model("float32").layers).blas_splits_batch
    assert not any(FastEngine(MODELS[name][0]("float32").layers).blas_splits_batch
                   for name in ("seed", "small", "gray"))
    text = dense_model("float32", threads=2).plan(32, print_fn=None)
    assert "over 1 thread(s), BLAS on 2 thread(s) (load average 0.5 on" in text
    assert "BLAS on 1 thread(s) (fewer than 32 rows" in dense_model("float32", threads=2).plan(16, print_fn=None)
    assert "BLAS on 1 thread(s) (one thread asked for)" in dense_model("float32", threads=1).plan(64, print_fn=None)


def test_an_oversubscribed_machine_keeps_blas_on_one_thread(monkeypatch):
    from minicnn.fast import engine as fast_engine

    cores = fast_engine.available_cores()
    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: cores + 5.0)
    assert fast_engine.blas_thread_choice(2, 1000)[0] == 1
    assert "would wait for each other" in dense_model("float32", threads=2).plan(64, print_fn=None)
    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: cores + 0.5)
    assert fast_engine.blas_thread_choice(2, 1000) == (2, f"load average {cores + 0.5:.1f} on {cores} cores")


def test_the_load_average_is_read_at_most_once_a_second(monkeypatch):
    from minicnn.fast import engine as fast_engine

    reads = []
    monkeypatch.setattr(fast_engine.os, "getloadavg", lambda: reads.append(1) or (3.25, 0.0, 0.0))
    monkeypatch.setattr(fast_engine, "_load_seen", [-1e9, 0.0])
    assert fast_engine.one_minute_load() == 3.25 and fast_engine.one_minute_load() == 3.25
    assert len(reads) == 1


def test_small_batches_of_a_model_without_convolutions_run_on_one_blas_thread(monkeypatch):
    """BLAS threads only from BLAS_THREADS_MIN_ROWS rows, in training and in predictions: smaller batches run on
    one thread with one BLAS thread; the batch is never split over threads."""
    from minicnn.fast import engine as fast_engine

    used = []
    real = fast_engine.blas_threads
    monkeypatch.setattr(fast_engine, "blas_threads", lambda count: used.append(count) or real(count))
    monkeypatch.setattr(fast_engine, "BLAS_THREADS_MIN_ROWS", 16)
    monkeypatch.setattr(fast_engine, "one_minute_load", lambda: 0.0)
    model = dense_model("float32", threads=2).compile("adam")
    x, y = data((6, 7, 2), 4, 15, "float32")
    model.train_step(x, y)
    model.predict(x)
    assert used == [] and len(model._engine.workspaces) == 1 and not model._engine.thread_grads
    x, y = data((6, 7, 2), 4, 16, "float32")
    model.train_step(x, y)
    assert used == [2]
    probabilities = model.predict(x)
    assert used == [2, 2] and len(model._engine.workspaces) == 1
    reference = dense_model("float32", engine="reference", threads=2)
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(probabilities, reference.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["seed", "small", "gray", "dense", "lenet"])
@pytest.mark.parametrize("engine", ["fast", "twins"])
def test_one_thread_equals_two(name, dtype, engine):
    build, input_shape, classes = MODELS[name]
    x, y = data(input_shape, classes, 20, dtype, seed=1)
    one = build(dtype, engine=engine, threads=1).compile("adam")
    two = build(dtype, engine=engine, threads=2).compile("adam")
    assert len(parallel.split(len(x), two.threads)) == 2
    for _ in range(3):
        loss_one, correct_one = one.train_step(x, y)
        loss_two, correct_two = two.train_step(x, y)
        assert loss_two == pytest.approx(loss_one, rel=1e-6) and correct_two == correct_one
    # float32: split batches round differently, which can flip a near-tied ReLU or pool decision and Adam then
    # moves a few weights apart (seen: 4.3e-5 after 3 steps of at most 1e-3, another input seed, Haswell kernels)
    step_tolerance = {"rtol": 0, "atol": 2e-4} if dtype == "float32" else tolerance(dtype)
    np.testing.assert_allclose(two.flat_params, one.flat_params, **step_tolerance)
    np.testing.assert_allclose(two.predict(x), one.predict(x), **tolerance(dtype))


def test_numpy_twins_on_the_fast_plan():
    x, y = data((25, 21, 3), 3, 6, "float64")
    model = small_model("float64", threads=1)
    loss, _, dx = model.loss_and_gradients(x, y, need_input_grad=True)
    grads = model.flat_grads.copy()
    model.engine = "twins"
    loss_numpy, _, dx_numpy = model.loss_and_gradients(x, y, need_input_grad=True)
    assert loss_numpy == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(dx_numpy, dx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.flat_grads, grads, rtol=1e-10, atol=1e-14)


def test_batch_sizes_change_between_calls():
    """Reused buffers grow and shrink with the batch (fit's last batch is smaller; predict after fit)."""
    x, y = data((25, 21, 3), 3, 23, "float64", seed=2)
    fast, plain = small_model("float64", threads=2), small_model("float64", engine="reference")
    for count in (23, 5, 1, 16):
        np.testing.assert_allclose(fast.predict(x[:count]), plain.predict(x[:count]), rtol=1e-10)
        loss, correct, _ = fast.loss_and_gradients(x[:count], y[:count])
        assert loss == pytest.approx(plain.loss_and_gradients(x[:count], y[:count])[0], rel=1e-10)
    assert fast.predict(x[:0]).shape == (0, 3)


def test_fit_on_the_fast_engine_learns():
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
    assert parallel.split(10, 2) == [(0, 5), (5, 10)]
    assert parallel.split(7, 2) == [(0, 7)]  # too few images for two threads
    assert parallel.split(3, 4, minimum=1) == [(0, 1), (1, 2), (2, 3)]
    monkeypatch.setenv("MINICNN_THREADS", "3")
    assert parallel.resolve_threads(None) == 3
    assert parallel.resolve_threads(1) == 1
    monkeypatch.delenv("MINICNN_THREADS")
    assert parallel.resolve_threads(None) == min(2, parallel.available_cores())
    with pytest.raises(ValueError):
        parallel.resolve_threads(0)


def test_the_engine_switch(monkeypatch):
    assert minicnn.seed_cnn().engine == "fast"
    assert minicnn.seed_cnn(engine="reference").engine == "reference"
    monkeypatch.setenv("MINICNN_ENGINE", "reference")
    assert minicnn.seed_cnn().engine == "reference"
    assert minicnn.Sequential([Flatten(), Dense(2)], input_shape=(3,), engine="twins").engine == "twins"
    monkeypatch.setenv("MINICNN_ENGINE", "turbo")
    with pytest.raises(ValueError, match="MINICNN_ENGINE='turbo'"):
        minicnn.seed_cnn()
    monkeypatch.delenv("MINICNN_ENGINE")
    model = minicnn.seed_cnn()
    with pytest.raises(ValueError, match="engine must be one of"):
        model.engine = "turbo"
    model.engine = "reference"
    assert "reference engine" in model.plan(8, print_fn=None)


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


# ---------------------------------------------------------------- each fused step against the layers it replaces
# (conv layer, relu?, pool?, input shape, images): each case names the algorithm the plan picks for it.
CONV_CASES = {
    "single-channel": (lambda: Conv2D(6, 3), True, lambda: MaxPool2D(2), (10, 12, 1), 3),
    "single-channel-same": (lambda: Conv2D(6, 3, padding="same"), True, lambda: MaxPool2D(2), (9, 8, 1), 3),
    "winograd-pool": (lambda: Conv2D(5, 3), True, lambda: MaxPool2D(2), (10, 10, 16), 3),
    "winograd-no-pool": (lambda: Conv2D(5, 3, padding="same"), False, None, (7, 6, 16), 3),
    "winograd-overlapping-pool": (lambda: Conv2D(5, 3), True, lambda: MaxPool2D(3, strides=2), (11, 11, 16), 3),
    "im2col-stride2-same": (lambda: Conv2D(4, 3, strides=2, padding="same"), True,
                            lambda: MaxPool2D(3, strides=2, padding="same"), (13, 11, 3), 3),
    "im2col-no-relu": (lambda: Conv2D(4, (2, 3)), False, lambda: MaxPool2D(2), (7, 9, 2), 3),
    "im2col-alone": (lambda: Conv2D(4, 5, padding="same"), False, None, (6, 6, 2), 3),
}


def reference_composition(conv, relu, pool, x, dy):
    """conv2d -> relu -> maxpool2d forward, then back: what the fused step must equal."""
    z, conv_cache = conv2d_forward(x, conv.kernel.value, conv.bias.value, conv.strides, conv.padding)
    a, relu_cache = relu_forward(z) if relu else (z, None)
    y, pool_cache = maxpool2d_forward(a, pool.pool_size, pool.strides, pool.padding) if pool else (a, None)
    da = maxpool2d_backward(dy, pool_cache) if pool else dy
    dz = relu_backward(da, relu_cache) if relu else da
    dx, dkernel, dbias = conv2d_backward(dz, conv_cache)
    return y, dx, dkernel, dbias


@pytest.mark.parametrize("kernels", [NUMBA_KERNELS, NUMPY_TWINS], ids=["numba", "twins"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_each_conv_step_equals_conv_relu_pool_of_the_layers(case, dtype, kernels, monkeypatch):
    monkeypatch.setattr(plan, "WINOGRAD_MIN_TILES", 1)
    make_conv, relu, make_pool, input_shape, images = CONV_CASES[case]
    layers = [make_conv()] + ([ReLU()] if relu else []) + ([make_pool()] if make_pool else [])
    model = minicnn.Sequential(layers, input_shape=input_shape, dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    model.layers[0].bias.value[...] = rng.uniform(-0.3, 0.3, model.layers[0].bias.shape)
    step, = build_steps(model.layers)
    assert case.startswith(choose_conv_algorithm(step.geometry, images)[0])  # (the case names its algorithm)
    x = rng.standard_normal((images, *input_shape)).astype(dtype)
    y, cache = step.forward(x, kernels, Workspace(), True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = [np.zeros_like(p.value) for p in model.layers[0].parameters()]
    dx = step.backward(dy, cache, grads, kernels, Workspace(), True)
    expected_y, expected_dx, dkernel, dbias = reference_composition(model.layers[0], relu, model.layers[-1]
                                                                    if make_pool else None, x, dy)
    tol = tolerance(dtype)
    np.testing.assert_allclose(y, expected_y, **tol)
    for actual, expected in ((dx, expected_dx), (grads[0], dkernel), (grads[1], dbias)):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual / scale, expected / scale, **tol)


@pytest.mark.parametrize("relu", [True, False])
def test_dense_step_equals_dense_then_relu_of_the_layers(relu):
    rng = np.random.default_rng(3)
    model = minicnn.Sequential([Dense(7)] + ([ReLU()] if relu else []), input_shape=(5,), dtype="float64")
    dense = model.layers[0]
    dense.bias.value[...] = rng.standard_normal(7)
    step, = build_steps(model.layers)
    assert isinstance(step, DenseStep)
    x, dy = rng.standard_normal((6, 5)), rng.standard_normal((6, 7))
    y, cache = step.forward(x, NUMBA_KERNELS, Workspace(), True)
    grads = [np.zeros_like(p.value) for p in dense.parameters()]
    dx = step.backward(dy, cache, grads, NUMBA_KERNELS, Workspace(), True)
    z, dense_cache = dense_forward(x, dense.kernel.value, dense.bias.value)
    expected_y, relu_cache = relu_forward(z) if relu else (z, None)
    expected_dx, dkernel, dbias = dense_backward(relu_backward(dy, relu_cache) if relu else dy, dense_cache)
    for actual, expected in ((y, expected_y), (dx, expected_dx), (grads[0], dkernel), (grads[1], dbias)):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layer", [ReLU(), MaxPool2D(3, strides=2, padding="same")], ids=["relu", "maxpool"])
def test_a_lone_relu_or_pool_runs_its_kernel_and_equals_the_layer(layer):
    model = minicnn.Sequential([layer], input_shape=(7, 6, 3), dtype="float64")
    step, = build_steps(model.layers)
    assert isinstance(step, KernelStep)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 7, 6, 3))
    y, cache = step.forward(x, NUMBA_KERNELS, Workspace(), True)
    expected_y, layer_cache = layer.forward(x, True)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(step.backward(dy, cache, [], NUMBA_KERNELS, Workspace(), True),
                                  layer.backward(dy, layer_cache, []))


# ---------------------------------------------------------------- the reference engine runs the layer files
@pytest.mark.parametrize("function", ["conv2d_forward", "conv2d_backward", "maxpool2d_backward", "relu_forward"])
def test_the_reference_engine_fails_when_a_layer_function_raises(function, monkeypatch):
    """What an instructor relies on: with a layer function cut out, training on the reference engine fails."""
    module = {"conv2d": "minicnn.layers.conv2d", "maxpool2d": "minicnn.layers.maxpool2d",
              "relu": "minicnn.layers.relu"}[function.split("_")[0]]

    def stub(*args, **kwargs):
        raise NotImplementedError(f"task {function}")

    monkeypatch.setattr(f"{module}.{function}", stub)
    x, y = data((28, 28, 1), 10, 8, "float32")
    model = minicnn.seed_cnn(engine="reference").compile("adam")
    with pytest.raises(NotImplementedError, match=function):
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)

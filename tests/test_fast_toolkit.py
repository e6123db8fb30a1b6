"""The fast engine's steps for the reports' toolkit (minicnn/fast/plan.py): BatchNormStep [+ ReLU], DropoutStep,
DenseStep with a LeakyReLU and, at inference, FoldedConvStep, each against the layer functions it replaces,
forward and backward, float32 and float64, on the Numba kernels and their twins; split over threads against the
whole batch."""
import threading

import numpy as np
import pytest

import minicnn
from minicnn.errors import ShapeError
from minicnn.fast import plan
from minicnn.fast.engine import NUMBA_KERNELS, NUMPY_TWINS
from minicnn.fast.parallel import Part, Reducer, Workspace, run_in_threads
from minicnn.fast.plan import BatchNormStep, ConvStep, DenseStep, DropoutStep, FoldedConvStep, build_steps
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, ReLU
from minicnn.layers.dense import dense_backward, dense_forward
from minicnn.layers.leaky_relu import leaky_relu_backward, leaky_relu_forward

pytestmark = pytest.mark.twins

KERNELS = pytest.mark.parametrize("kernels", [NUMBA_KERNELS, NUMPY_TWINS], ids=["numba", "twins"])
DTYPES = pytest.mark.parametrize("dtype", ["float64", "float32"])


def tolerance(dtype):
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}


def built(layer, input_shape, dtype, seed=0):
    minicnn.Sequential([layer], input_shape=input_shape, dtype=dtype, seed=seed)
    return layer


def batch_norm_layer(input_shape, dtype, **settings):
    layer = built(BatchNormalization(**settings), input_shape, dtype)
    rng = np.random.default_rng(1)
    features = input_shape[-1]
    for parameter in layer.parameters():
        parameter.value[...] = rng.standard_normal(features)
    layer.moving_mean.value[...] = rng.standard_normal(features)
    layer.moving_variance.value[...] = rng.random(features) + 0.5
    return layer


def in_parts(step, x, dy, kernels, parts, grads_shapes):
    """The step's forward and backward with x split into ``parts`` over that many threads (Part/Reducer, as the
    engine does): (y, dx, per-thread grads summed)."""
    bounds = [len(x) * i // parts for i in range(parts + 1)]
    reducer = Reducer(parts)
    grads = [[np.zeros(shape, dtype=x.dtype) for shape in grads_shapes] for _ in range(parts)]

    def run(slot):
        start, stop = bounds[slot], bounds[slot + 1]
        workspace = Workspace()
        workspace.part = Part(start, len(x), slot, reducer)
        y, cache = step.forward(x[start:stop], kernels, workspace, True)
        y = np.array(y)
        dx = step.backward(dy[start:stop], cache, grads[slot], kernels, workspace, True)
        return y, np.array(dx)

    results = run_in_threads(run, parts)
    return (np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]),
            [sum(g[i] for g in grads) for i in range(len(grads_shapes))])


@KERNELS
@DTYPES
@pytest.mark.parametrize("input_shape, settings", [((5, 4, 3), {}), ((6,), {}), ((3, 2, 4), {"center": False}),
                                                   ((7,), {"scale": False, "center": False})])
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("with_relu", [False, True], ids=["batchnorm", "batchnorm+relu"])
def test_batch_norm_step_equals_the_layer_in_training(input_shape, settings, parts, with_relu, dtype, kernels):
    """Forward (output and moving statistics) and backward (dx, dgamma, dbeta), the batch whole or split over
    threads whose statistics are added up; with a ReLU after it, fused into the step."""
    layer = batch_norm_layer(input_shape, dtype, **settings)
    relu = ReLU() if with_relu else None
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((9, *input_shape)) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    moving = [layer.moving_mean.value.copy(), layer.moving_variance.value.copy()]
    expected_y, cache = layer.forward(x, True)
    expected_moving = [layer.moving_mean.value.copy(), layer.moving_variance.value.copy()]
    expected_grads = [np.zeros_like(p.value) for p in layer.parameters()]
    dz = dy
    if relu is not None:
        expected_y, relu_cache = relu.forward(expected_y, True)
        dz = relu.backward(dy, relu_cache, [])
    expected_dx = layer.backward(dz, cache, expected_grads)
    layer.moving_mean.value[...], layer.moving_variance.value[...] = moving
    step, = build_steps([layer] + ([relu] if relu is not None else []))
    assert isinstance(step, BatchNormStep) and step.relu == with_relu
    y, dx, grads = in_parts(step, x, dy, kernels, parts, [p.shape for p in layer.parameters()])
    tol = tolerance(dtype)
    np.testing.assert_allclose(y, expected_y, **tol)
    np.testing.assert_allclose(dx, expected_dx, **tol)
    for actual, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(actual, expected, **tol)
    np.testing.assert_allclose(layer.moving_mean.value, expected_moving[0], **tol)
    np.testing.assert_allclose(layer.moving_variance.value, expected_moving[1], **tol)


@KERNELS
@DTYPES
def test_batch_norm_step_equals_the_layer_at_inference(dtype, kernels):
    layer = batch_norm_layer((4, 3, 5), dtype)
    rng = np.random.default_rng(3)
    x, dy = (rng.standard_normal((3, 4, 3, 5)).astype(dtype) for _ in range(2))
    step, = build_steps([layer])
    y, cache = step.forward(x, kernels, Workspace(), False)
    expected_y, layer_cache = layer.forward(x, False)
    np.testing.assert_allclose(y, expected_y, **tolerance(dtype))
    grads = [np.zeros_like(p.value) for p in layer.parameters()]
    expected_grads = [np.zeros_like(p.value) for p in layer.parameters()]
    np.testing.assert_allclose(step.backward(dy, cache, grads, kernels, Workspace(), True),
                               layer.backward(dy, layer_cache, expected_grads), **tolerance(dtype))
    for actual, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(actual, expected, **tolerance(dtype))


@KERNELS
@DTYPES
@pytest.mark.parametrize("parts", [1, 2])
def test_dropout_step_draws_the_layers_mask(parts, dtype, kernels):
    """The same mask as the layer's own forward (the reference engine's), whole or split over threads."""
    layer = built(Dropout(0.4, seed=11), (5, 3, 2), dtype)
    rng = np.random.default_rng(4)
    x, dy = (rng.standard_normal((8, 5, 3, 2)).astype(dtype) for _ in range(2))
    layer.calls = 6
    step, = build_steps([layer])
    assert isinstance(step, DropoutStep)
    y, dx, _ = in_parts(step, x, dy, kernels, parts, [])
    expected_y, cache = layer.forward(x, True)  # (call 6; the layer then counts 7)
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(dx, layer.backward(dy, cache, []))
    assert 0.2 < (y == 0).mean() < 0.6
    inference, _ = step.forward(x, kernels, Workspace(), False)
    assert inference is x


@KERNELS
@DTYPES
@pytest.mark.parametrize("slope", [0.2, 0.3])
def test_dense_step_equals_dense_then_leaky_relu_of_the_layers(slope, dtype, kernels):
    model = minicnn.Sequential([Dense(7), LeakyReLU(slope)], input_shape=(5,), dtype=dtype)
    dense = model.layers[0]
    rng = np.random.default_rng(5)
    dense.bias.value[...] = rng.standard_normal(7)
    step, = build_steps(model.layers)
    assert isinstance(step, DenseStep) and step.slope == slope
    x, dy = rng.standard_normal((6, 5)).astype(dtype), rng.standard_normal((6, 7)).astype(dtype)
    y, cache = step.forward(x, kernels, Workspace(), True)
    grads = [np.zeros_like(p.value) for p in dense.parameters()]
    dx = step.backward(dy, cache, grads, kernels, Workspace(), True)
    z, dense_cache = dense_forward(x, dense.kernel.value, dense.bias.value)
    expected_y, leaky_cache = leaky_relu_forward(z, slope)
    expected_dx, dkernel, dbias = dense_backward(leaky_relu_backward(dy, leaky_cache, slope), dense_cache)
    for actual, expected in ((y, expected_y), (dx, expected_dx), (grads[0], dkernel), (grads[1], dbias)):
        np.testing.assert_allclose(actual, expected, **tolerance(dtype))


def toolkit_model(dtype, **settings):
    layers = [Conv2D(6, 3, padding="same", activation="relu"), BatchNormalization(), MaxPool2D(2), Dropout(0.3),
              Conv2D(8, 3, padding="same", activation="relu"), BatchNormalization(), Dropout(0.2, seed=3), Flatten(),
              Dense(12, activation="leaky_relu"), BatchNormalization(), Dropout(0.5), Dense(4, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(8, 8, 2), dtype=dtype, seed=7, **settings)


def test_the_plan_names_the_new_steps():
    text = toolkit_model("float32", engine="fast", threads=2).plan(32, print_fn=None)
    assert "over 2 thread(s)" in text
    assert "batchnorm" in text and "summed over the threads" in text
    assert "dropout" in text and "mask from (seed, call, element)" in text
    assert "dense + leaky_relu" in text and "dense+leaky_relu(0.2)" in text
    assert "the layer's own function" not in text.split("flatten")[0]  # (nothing before Flatten runs as a layer)


@pytest.mark.parametrize("engine", ["fast", "twins"])
def test_a_toolkit_model_trains_the_same_on_one_thread_two_and_the_reference(engine):
    """float64, three Adam steps: the fast engine on one thread and on two (batch statistics added up over the
    threads, each thread its rows of the dropout masks) against the reference engine."""
    rng = np.random.default_rng(6)
    x, y = rng.random((20, 8, 8, 2)), rng.integers(0, 4, 20)
    models = [toolkit_model("float64", engine=engine, threads=1), toolkit_model("float64", engine=engine, threads=2),
              toolkit_model("float64", engine="reference")]
    for model in models:
        model.compile(minicnn.optimizers.Adam(1e-2))
    losses = [[model.train_step(x, y)[0] for _ in range(3)] for model in models]
    np.testing.assert_allclose(losses[0], losses[2], rtol=1e-12)
    np.testing.assert_allclose(losses[1], losses[2], rtol=1e-12)
    for model in models[:2]:
        for actual, expected in zip(model.get_weights(), models[2].get_weights(), strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=ROUNDING_WEIGHTS)
        np.testing.assert_allclose(model.predict(x), models[2].predict(x), rtol=1e-9, atol=1e-12)
        assert [layer.calls for layer in model.layers if isinstance(layer, Dropout)] == [3, 3, 3]


def test_a_batch_of_one_is_refused_by_the_fast_engine_too():
    model = toolkit_model("float32", engine="fast").compile("adam")
    with pytest.raises(ShapeError, match="training batch of one sample"):
        model.train_step(np.zeros((1, 8, 8, 2), dtype=np.float32), np.zeros(1, dtype=int))


def test_a_failing_thread_does_not_leave_the_other_waiting(monkeypatch):
    """One thread raises before the batch statistics' barrier: the other is released, and the error raised is the
    failing thread's own (not the other's BrokenBarrierError)."""
    model = toolkit_model("float32", engine="fast", threads=2).compile("adam")
    step = next(step for step in model._engine.steps if isinstance(step, BatchNormStep))
    original = step.forward

    def failing(x, kernels, workspace, training):
        if workspace.part.slot == 1:
            raise RuntimeError("thread 1 failed")
        return original(x, kernels, workspace, training)

    monkeypatch.setattr(step, "forward", failing)
    done = threading.Event()

    def train():
        with pytest.raises(RuntimeError, match="thread 1 failed"):
            model.train_step(np.zeros((16, 8, 8, 2), dtype=np.float32), np.zeros(16, dtype=int))
        done.set()

    thread = threading.Thread(target=train)
    thread.start()
    thread.join(timeout=60)
    assert done.is_set()


@KERNELS
@DTYPES
@pytest.mark.parametrize("conv, pool, channels, algorithm", [
    (Conv2D(6, 3, padding="same"), MaxPool2D(2), 3, "im2col"),
    (Conv2D(20, 3), None, 20, "winograd"),
    (Conv2D(5, (2, 3), strides=2), MaxPool2D(3, strides=2, padding="same"), 3, "im2col"),
    (Conv2D(6, 3, padding="same"), MaxPool2D(2), 1, "single-channel")], ids=["im2col-pool", "winograd", "strided",
                                                                           "single-channel"])
def test_folded_conv_step_equals_conv_batchnorm_relu_pool_at_inference(conv, pool, channels, algorithm, dtype,
                                                                       kernels, monkeypatch):
    monkeypatch.setattr(plan, "WINOGRAD_MIN_TILES", 1)
    norm, relu = BatchNormalization(), ReLU()
    layers = [conv, norm, relu] + ([pool] if pool else [])
    minicnn.Sequential(layers, input_shape=(9, 8, channels), dtype=dtype, seed=2)
    rng = np.random.default_rng(9)
    for parameter in norm.parameters():
        parameter.value[...] = rng.standard_normal(norm.input_shape[-1])
    norm.moving_mean.value[...] = rng.standard_normal(norm.input_shape[-1])
    norm.moving_variance.value[...] = rng.random(norm.input_shape[-1]) + 0.5
    x = rng.standard_normal((3, 9, 8, channels)).astype(dtype)
    step, = build_steps(layers, inference=True)
    assert isinstance(step, FoldedConvStep) and step.describe(len(x))[0].startswith(algorithm + "+batchnorm")
    y, _ = step.forward(x, kernels, Workspace(), False)
    expected = x
    for layer in layers:
        expected, _ = layer.forward(expected, False)
    np.testing.assert_allclose(y, expected, **tolerance(dtype))
    assert [type(s) for s in build_steps(layers)][:2] == [ConvStep, BatchNormStep]  # training: unfolded
    with pytest.raises(RuntimeError, match="inference"):
        step.forward(x, kernels, Workspace(), True)


def folded_model(dtype, **settings):
    layers = [Conv2D(6, 3, padding="same"), BatchNormalization(), ReLU(), MaxPool2D(2), Conv2D(16, 3),
              BatchNormalization(center=False), Flatten(), Dense(8), BatchNormalization(), ReLU(), Dropout(0.3),
              Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(10, 10, 2), dtype=dtype, seed=4, **settings)


def test_a_model_with_folded_batch_normalization_trains_and_predicts_as_the_reference():
    rng = np.random.default_rng(10)
    x, y = rng.random((12, 10, 10, 2)), rng.integers(0, 3, 12)
    fast, reference = folded_model("float64", engine="fast", threads=2), folded_model("float64", engine="reference")
    text = fast.plan(12, print_fn=None)
    assert "im2col+batchnorm+relu+pool" in text and "folded into its kernel and bias" in text
    assert "batchnorm+relu" in text  # (the Dense's BatchNormalization + ReLU in training)
    for model in (fast, reference):
        model.compile(minicnn.optimizers.Adam(1e-2))
    for _ in range(3):
        assert fast.train_step(x, y)[0] == pytest.approx(reference.train_step(x, y)[0], rel=1e-12)
    np.testing.assert_allclose(fast.predict(x), reference.predict(x), rtol=1e-9, atol=1e-12)
    assert fast.evaluate(x, y) == pytest.approx(reference.evaluate(x, y), rel=1e-10)


@KERNELS
@DTYPES
@pytest.mark.parametrize("conv, pool, channels, algorithm", [
    (Conv2D(6, 3, padding="same"), MaxPool2D(2), 3, "im2col"),
    (Conv2D(4, 3, padding="same"), None, 2, "im2col"),
    (Conv2D(20, 3, padding="same"), MaxPool2D(2), 20, "winograd"),  # (z, then the epilogue: no pooling transform)
    (Conv2D(20, 3), None, 20, "winograd"),
    (Conv2D(5, (2, 3), strides=2), MaxPool2D(3, strides=2, padding="same"), 3, "im2col"),
    (Conv2D(6, 3, padding="same"), MaxPool2D(2), 1, "im2col"),  # (single-channel has no slope)
    (Conv2D(6, 5), MaxPool2D(2), 1, "im2col")], ids=["im2col-pool", "im2col", "winograd-pool", "winograd",
                                                     "strided-overlapping", "one-channel", "one-channel-5x5"])
@pytest.mark.parametrize("slope", [0.2, 0.3])
def test_conv_step_with_leaky_relu_equals_the_layers(conv, pool, channels, algorithm, slope, dtype, kernels,
                                                     monkeypatch):
    """Conv2D -> LeakyReLU [-> MaxPool2D] as one ConvStep, forward and backward, against the layers' own
    forward and backward one after another."""
    monkeypatch.setattr(plan, "WINOGRAD_MIN_TILES", 1)
    leaky = LeakyReLU(slope)
    layers = [conv, leaky] + ([pool] if pool else [])
    minicnn.Sequential(layers, input_shape=(9, 8, channels), dtype=dtype, seed=2)
    rng = np.random.default_rng(11)
    conv.bias.value[...] = rng.standard_normal(conv.filters) * 0.5
    x = rng.standard_normal((3, 9, 8, channels)).astype(dtype)
    step, = build_steps(layers)
    assert isinstance(step, ConvStep)
    what, _ = step.describe(len(x))
    assert what == f"{algorithm}+leaky_relu({slope:g})" + ("+pool" if pool else "")
    y, cache = step.forward(x, kernels, Workspace(), True)
    y = np.array(y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = [np.zeros_like(p.value) for p in conv.parameters()]
    dx = step.backward(dy, cache, grads, kernels, Workspace(), True)

    expected, caches = x, []
    for layer in layers:
        expected, layer_cache = layer.forward(expected, True)
        caches.append(layer_cache)
    expected_grads = [np.zeros_like(p.value) for p in conv.parameters()]
    expected_dx = dy
    for layer, layer_cache in zip(reversed(layers), reversed(caches), strict=True):
        expected_dx = layer.backward(expected_dx, layer_cache, expected_grads if layer is conv else [])
    tol = tolerance(dtype)
    np.testing.assert_allclose(y, expected, **tol)
    np.testing.assert_allclose(dx, expected_dx, **tol)
    for actual, wanted in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(actual, wanted, **tol)


def test_a_leaky_relu_of_slope_zero_is_not_fused():
    """Slope 0 is not a ReLU at x = 0 (the LeakyReLU passes the gradient there): it stays a layer of its own."""
    layers = [Conv2D(4, 3), LeakyReLU(0.0), MaxPool2D(2)]
    minicnn.Sequential(layers, input_shape=(6, 6, 2), dtype="float32")
    assert [type(step).__name__ for step in build_steps(layers)] == ["ConvStep", "LayerStep", "KernelStep"]


# A convolution's bias right before a BatchNormalization has an exact gradient of 0 (the normalization removes any
# shift): what it gets is rounding, ~1e-17, which Adam (epsilon 1e-7) turns into weights of ~1e-12 that differ with
# the order of additions (OpenBLAS's kernels: Sandybridge's differ from SkylakeX's). Weights are compared above that.
ROUNDING_WEIGHTS = 1e-10


def leaky_model(dtype, **settings):
    layers = [Conv2D(6, 3, padding="same"), LeakyReLU(0.2), MaxPool2D(2), Conv2D(16, 3, activation="leaky_relu"),
              Conv2D(16, 3, padding="same"), BatchNormalization(), LeakyReLU(0.1), MaxPool2D(2), Flatten(),
              Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(10, 10, 1), dtype=dtype, seed=5, **settings)


@pytest.mark.parametrize("engine", ["fast", "twins"])
def test_a_model_with_leaky_convolutions_trains_and_predicts_as_the_reference(engine):
    rng = np.random.default_rng(12)
    x, y = rng.random((12, 10, 10, 1)) - 0.3, rng.integers(0, 3, 12)
    fast, reference = leaky_model("float64", engine=engine, threads=2), leaky_model("float64", engine="reference")
    text = fast.plan(12, print_fn=None)
    assert "im2col+leaky_relu(0.2)+pool" in text and "single-channel kernels have no leaky slope" in text
    assert "+leaky_relu(0.1)+pool" in text and "folded into its kernel and bias" in text  # (inference)
    assert "batchnorm+leaky_relu(0.1)" in text  # (training)
    assert "the layer's own function" not in text.split("flatten")[0]
    for model in (fast, reference):
        model.compile(minicnn.optimizers.Adam(1e-2))
    for _ in range(3):
        assert fast.train_step(x, y)[0] == pytest.approx(reference.train_step(x, y)[0], rel=1e-12)
    for actual, expected in zip(fast.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=ROUNDING_WEIGHTS)
    np.testing.assert_allclose(fast.predict(x), reference.predict(x), rtol=1e-9, atol=1e-12)


@KERNELS
@DTYPES
@pytest.mark.parametrize("make, channels, algorithm", [
    (lambda: (Conv2D(6, 3, padding="same", activation="relu"), []), 3, "im2col+relu"),
    (lambda: (Conv2D(20, 3, padding="same"), [ReLU()]), 20, "winograd"),
    (lambda: (Conv2D(20, 3, padding="same", activation="relu"), [MaxPool2D(2)]), 20, "winograd+relu+pool"),
    (lambda: (Conv2D(5, (2, 3), strides=2), []), 3, "im2col"),
    (lambda: (Conv2D(6, 3, padding="same", activation="relu"), [MaxPool2D(2)]), 1, "single-channel+relu+pool")],
    ids=["im2col", "winograd", "winograd-pool", "strided", "single-channel"])
@pytest.mark.parametrize("parts", [1, 2])
def test_batch_norm_sums_taken_in_the_convolutions_output_pass(make, channels, algorithm, parts, dtype, kernels,
                                                               monkeypatch):
    """Conv2D [ReLU] [MaxPool2D] -> BatchNormalization [-> ReLU] in training: the ConvStep adds up the
    BatchNormalization's sums chunk by chunk as it writes its output, the BatchNormStep uses them. Forward
    (output, moving statistics) and backward (dx, every gradient) against the layers' own functions, whole or
    split over threads."""
    monkeypatch.setattr(plan, "WINOGRAD_MIN_TILES", 1)
    conv, after = make()
    norm = BatchNormalization()
    layers = [conv] + [layer for layer in after if not isinstance(layer, ReLU)] + [norm] + \
        [layer for layer in after if isinstance(layer, ReLU)]
    layers = minicnn.Sequential(layers, input_shape=(9, 8, channels), dtype=dtype, seed=3).layers  # (+ activation)
    rng = np.random.default_rng(13)
    for parameter in norm.parameters():
        parameter.value[...] = rng.standard_normal(norm.input_shape[-1])
    norm.moving_mean.value[...] = rng.standard_normal(norm.input_shape[-1]) * 0.1
    x = rng.standard_normal((6, 9, 8, channels)).astype(dtype)
    steps = build_steps(layers)
    assert [type(step) for step in steps] == [ConvStep, BatchNormStep]
    assert steps[0].statistics_for is steps[1] and steps[1].sums_from_conv
    assert steps[0].describe(6)[0] == algorithm and "output pass" in steps[0].describe(6)[1]

    moving = [norm.moving_mean.value.copy(), norm.moving_variance.value.copy()]
    expected, caches = x, []
    for layer in layers:
        expected, layer_cache = layer.forward(expected, True)
        caches.append(layer_cache)
    expected_moving = [norm.moving_mean.value.copy(), norm.moving_variance.value.copy()]
    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_grads = {id(layer): [np.zeros_like(p.value) for p in layer.parameters()] for layer in layers}
    expected_dx = dy
    for layer, layer_cache in zip(reversed(layers), reversed(caches), strict=True):
        expected_dx = layer.backward(expected_dx, layer_cache, expected_grads[id(layer)])
    norm.moving_mean.value[...], norm.moving_variance.value[...] = moving

    bounds = [len(x) * i // parts for i in range(parts + 1)]
    reducer = Reducer(parts)
    grads = [{id(step): [np.zeros_like(p.value) for p in step.layers[0].parameters()] for step in steps}
             for _ in range(parts)]

    def run(slot):
        start, stop = bounds[slot], bounds[slot + 1]
        workspace = Workspace()
        workspace.part = Part(start, len(x), slot, reducer)
        h, step_caches = x[start:stop], []
        for step in steps:
            h, step_cache = step.forward(h, kernels, workspace, True)
            step_caches.append(step_cache)
        y, g = np.array(h), dy[start:stop]
        for step, step_cache in zip(reversed(steps), reversed(step_caches), strict=True):
            g = step.backward(g, step_cache, grads[slot][id(step)], kernels, workspace, True)
        return y, np.array(g)

    results = run_in_threads(run, parts)
    tol = tolerance(dtype)
    np.testing.assert_allclose(np.concatenate([r[0] for r in results]), expected, **tol)
    np.testing.assert_allclose(np.concatenate([r[1] for r in results]), expected_dx, **tol)
    for step in steps:
        # (rounding follows the layer's largest gradient: the conv bias's is ~0 before a BatchNormalization)
        largest = max(np.abs(wanted).max() for wanted in expected_grads[id(step.layers[0])])
        for number, wanted in enumerate(expected_grads[id(step.layers[0])]):
            np.testing.assert_allclose(sum(g[id(step)][number] for g in grads), wanted, rtol=tol["rtol"],
                                       atol=tol["atol"] + tol["rtol"] * largest)
    np.testing.assert_allclose(norm.moving_mean.value, expected_moving[0], **tol)
    np.testing.assert_allclose(norm.moving_variance.value, expected_moving[1], **tol)


@KERNELS
@DTYPES
@pytest.mark.parametrize("pool", [(2, 2, "valid"), (2, 2, "same"), (3, 2, "same"), (3, 1, "valid"), (2, 3, "valid")],
                         ids=["2x2", "2x2-same-odd", "3x3-stride-2-same", "3x3-stride-1", "2x2-stride-3"])
def test_a_lone_maxpool_step_equals_the_layer(pool, dtype, kernels):
    """MaxPool2D after a BatchNormalization (report001) runs as a KernelStep on the conv epilogue kernel: the
    layer's maxima, tie rule, signed zeros and gradient, odd sizes and "same" padding included."""
    size, strides, padding = pool
    layer = MaxPool2D(size, strides=strides, padding=padding)
    model = minicnn.Sequential([BatchNormalization(), layer], input_shape=(7, 9, 5), dtype=dtype)
    step = build_steps(model.layers)[1]
    assert type(step).__name__ == "KernelStep"
    rng = np.random.default_rng(14)
    x = np.round(rng.standard_normal((3, 7, 9, 5)) * 2).astype(dtype)  # (ties)
    x[0, :2, :2, 0] = -0.0
    x[1, :2, :2, 1] = [[-0.0, 0.0], [0.0, -0.0]]
    workspace = Workspace()
    for _ in range(2):  # (the workspace's buffers used again)
        y, cache = step.forward(x, kernels, workspace, True)
        expected_y, layer_cache = layer.forward(x, True)
        np.testing.assert_array_equal(y, expected_y)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(expected_y))
        dy = rng.standard_normal(y.shape).astype(dtype)
        np.testing.assert_allclose(step.backward(dy, cache, [], kernels, workspace, True),
                                   layer.backward(dy, layer_cache, []), **tolerance(dtype))


@KERNELS
@DTYPES
@pytest.mark.parametrize("input_shape", [(5, 4, 3), (6,)])
@pytest.mark.parametrize("parts", [1, 2])
def test_batch_norm_step_with_leaky_relu_equals_the_layers(input_shape, parts, dtype, kernels):
    """BatchNormalization -> LeakyReLU as one BatchNormStep (the slope in the batch-norm kernels), in training,
    whole or split over threads, and at inference, against the two layers' own functions."""
    layer, leaky = batch_norm_layer(input_shape, dtype), LeakyReLU(0.2)
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((9, *input_shape)) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    moving = [layer.moving_mean.value.copy(), layer.moving_variance.value.copy()]
    normalized, cache = layer.forward(x, True)
    expected_y, leaky_cache = leaky.forward(normalized, True)
    assert (normalized < 0).any()
    expected_grads = [np.zeros_like(p.value) for p in layer.parameters()]
    expected_dx = layer.backward(leaky.backward(dy, leaky_cache, []), cache, expected_grads)
    layer.moving_mean.value[...], layer.moving_variance.value[...] = moving
    step, = build_steps([layer, leaky])
    assert isinstance(step, BatchNormStep) and step.describe(9)[0] == "batchnorm+leaky_relu(0.2)"
    y, dx, grads = in_parts(step, x, dy, kernels, parts, [p.shape for p in layer.parameters()])
    tol = tolerance(dtype)
    np.testing.assert_allclose(y, expected_y, **tol)
    np.testing.assert_allclose(dx, expected_dx, **tol)
    for actual, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(actual, expected, **tol)
    inference, _ = step.forward(x, kernels, Workspace(), False)
    np.testing.assert_allclose(inference, leaky.forward(layer.forward(x, False)[0], False)[0], **tol)

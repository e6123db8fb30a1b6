"""Float64 numerical gradient checks of every layer's input and parameter gradients, and of whole models.

Relative error (see minicnn.gradcheck) must be below 1e-6; a correct layer lands near 1e-9.
Layers are checked alone (their own NumPy functions), whole models on every engine. And the checker itself: a
verdict per tensor, a pass on real MNIST images (full of kinks), a fail on a broken backward pass, also at a kink.
"""
import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import check_layer, check_model
from minicnn.layers import AveragePooling2D, Conv2D, Dense, Flatten, LeakyReLU, MaxPool2D, ReLU, Softmax
from minicnn.layers.random_rotation import RandomRotation
from minicnn.layers.random_translation import RandomTranslation
from minicnn.layers.random_zoom import RandomZoom

pytestmark = pytest.mark.gradcheck  # .ci/run runs these again under each OPENBLAS_CORETYPE

TOLERANCE = 1e-6

LAYER_CASES = [
    pytest.param(lambda: Conv2D(4, 3), (6, 6, 2), id="conv-3x3-valid"),
    pytest.param(lambda: Conv2D(4, 3, strides=2, padding="same"), (7, 7, 3), id="conv-stride2-same-odd"),
    pytest.param(lambda: Conv2D(4, 3, strides=2, padding="same"), (8, 8, 3), id="conv-stride2-same-even"),
    pytest.param(lambda: Conv2D(3, (2, 3), strides=(1, 2)), (6, 7, 2), id="conv-rect-kernel-stride"),
    pytest.param(lambda: Conv2D(2, 5, padding="same"), (5, 4, 1), id="conv-5x5-same"),
    pytest.param(lambda: Conv2D(3, 1), (4, 4, 3), id="conv-1x1"),
    pytest.param(lambda: MaxPool2D(2), (6, 6, 3), id="pool-2"),
    pytest.param(lambda: MaxPool2D(2), (5, 7, 2), id="pool-2-odd-input"),
    pytest.param(lambda: MaxPool2D(3, strides=2), (7, 7, 2), id="pool-3-stride2-overlap"),
    pytest.param(lambda: MaxPool2D(2, padding="same"), (5, 5, 2), id="pool-2-same-odd"),
    pytest.param(lambda: MaxPool2D(3, strides=2, padding="same"), (6, 7, 2), id="pool-3-stride2-same"),
    pytest.param(lambda: AveragePooling2D(2), (5, 7, 2), id="avgpool-2-odd-input"),
    pytest.param(lambda: RandomRotation(0.2, seed=1), (6, 7, 2), id="random-rotation-reflect"),
    pytest.param(lambda: RandomRotation(0.2, fill_mode="constant", fill_value=0.5, seed=1), (6, 7, 2),
                 id="random-rotation-constant"),
    pytest.param(lambda: RandomTranslation(0.3, 0.3, fill_mode="wrap", interpolation="nearest", seed=2), (6, 5, 2),
                 id="random-translation-wrap-nearest"),
    pytest.param(lambda: RandomZoom(0.3, fill_mode="nearest", seed=3), (7, 6, 1), id="random-zoom-nearest-fill"),
    pytest.param(lambda: AveragePooling2D(3, strides=2), (7, 7, 2), id="avgpool-3-stride2-overlap"),
    pytest.param(lambda: AveragePooling2D(2, padding="same"), (5, 5, 2), id="avgpool-2-same-odd"),
    pytest.param(lambda: AveragePooling2D(3, strides=2, padding="same"), (6, 7, 2), id="avgpool-3-stride2-same"),
    pytest.param(lambda: ReLU(), (3, 4, 5), id="relu"),
    pytest.param(lambda: LeakyReLU(), (3, 4, 5), id="leaky-relu"),
    pytest.param(lambda: LeakyReLU(negative_slope=0.2), (7,), id="leaky-relu-0.2"),
    pytest.param(lambda: Flatten(), (3, 3, 2), id="flatten"),
    pytest.param(lambda: Dense(5), (7,), id="dense"),
    pytest.param(lambda: Softmax(), (6,), id="softmax"),
]


@pytest.mark.parametrize("make_layer, input_shape", LAYER_CASES)
def test_layer_gradients(make_layer, input_shape):
    results = check_layer(make_layer(), input_shape, batch_size=3, seed=1, verbose=False)
    for result in results:
        assert result.relative_error < TOLERANCE, str(result)
    assert results.passed, str(results)


def small_model(engine="fast"):
    layers = [Conv2D(4, 3, activation="relu"), MaxPool2D(2),
              Conv2D(5, 3, strides=2, padding="same", activation="relu"), MaxPool2D(2, padding="same"),
              Flatten(), Dense(6, activation="relu"), Dense(3, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(11, 11, 2), dtype="float64", seed=3, engine=engine)


@pytest.mark.parametrize("engine", ["reference", "fast", "twins"])
def test_whole_small_model_gradients(engine):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 11, 11, 2))
    y = rng.integers(0, 3, size=4)
    results = check_model(small_model(engine), x, y, max_entries=None, verbose=False)
    assert [r.name for r in results][0] == "input"
    assert len(results) == 1 + 8
    for result in results:
        assert result.relative_error < TOLERANCE, str(result)


def test_seed_cnn_gradients_sampled():
    """The real seed CNN, copied to float64, on two MNIST-sized inputs; 30 random entries per tensor.

    A first-layer bias feeds 2 x 26 x 26 ReLUs and max-pool decisions: a step of 1e-6 pushes a few of them
    across their kink (which gave 2e-3 error on conv2d.bias before the checker skipped such steps)."""
    model = minicnn.seed_cnn(seed=5)
    rng = np.random.default_rng(1)
    x = rng.random((2, 28, 28, 1))
    results = check_model(model, x, np.array([3, 7]), max_entries=30, verbose=False)
    for result in results:
        assert result.relative_error < TOLERANCE, str(result)
    assert results.passed


def test_one_hot_labels_give_the_same_gradients_as_integer_labels():
    model = small_model()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 11, 11, 2))
    labels = np.array([0, 2, 1, 2])
    loss_int, _, dx_int = model.loss_and_gradients(x, labels, need_input_grad=True)
    grads_int = model.flat_grads.copy()
    loss_hot, _, dx_hot = model.loss_and_gradients(x, np.eye(3)[labels], need_input_grad=True)
    assert loss_hot == pytest.approx(loss_int, rel=1e-12)
    np.testing.assert_allclose(model.flat_grads, grads_int, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dx_hot, dx_int, rtol=1e-10, atol=1e-14)


def test_gradient_checker_catches_a_broken_backward_pass(monkeypatch):
    """The checker is worth something only if it fails on a wrong gradient."""
    import minicnn.layers.dense as dense_module

    original = dense_module.dense_backward

    def broken(dy, cache, need_input_grad=True):
        dx, dkernel, dbias = original(dy, cache, need_input_grad)
        return dx, dkernel * 1.01, dbias

    monkeypatch.setattr(dense_module, "dense_backward", broken)
    results = check_layer(Dense(4), (5,), verbose=False)
    kernel = next(r for r in results if r.name == "kernel")
    assert kernel.relative_error > 1e-3
    assert not kernel.passed and not results.passed
    assert str(kernel).startswith("FAIL") and "1 of 3 tensors FAIL: kernel" in results.summary()


class ReLUWithGradientAtZero(ReLU):
    """A classic bug: the mask y >= 0 lets the gradient through where the input was exactly 0. (Not the class
    ReLU, so the engine runs its backward as written instead of a fused kernel.)"""

    def backward(self, dy, cache, grads, need_input_grad=True):
        return dy * (cache >= 0)


def test_the_report_gives_a_verdict_per_tensor_and_a_summary(capsys):
    report = check_layer(Dense(3), (4,))
    printed = capsys.readouterr().out.splitlines()
    assert report.passed and all(result.passed for result in report)
    assert printed[0].startswith("gradient check of Dense")
    assert [line.split()[:2] for line in printed[1:4]] == [["PASS", "input"], ["PASS", "kernel"], ["PASS", "bias"]]
    assert all("< 1e-06" in line for line in printed[1:4])
    largest = max(result.relative_error for result in report)
    assert printed[4] == f"all 3 tensors pass (largest relative error {largest:.1e} < 1e-06)"


def test_steps_across_a_kink_are_taken_from_the_side_backprop_chose():
    """ReLU inputs of exactly 0: a central difference would give 1/2 (half on, half off); from the side where the
    unit stays off it gives 0, as backprop does (the derivative at 0 is 0). The broken ReLU fails there."""
    x = np.array([[0.0, 1.5, 0.0, -2.0, 0.0, 0.7]])
    report = check_layer(ReLU(), (6,), x=x, verbose=False)
    assert report.passed and report[0].entries_one_sided == 3 and report[0].entries_checked == 6
    broken = check_layer(ReLUWithGradientAtZero(), (6,), x=x, verbose=False)
    assert not broken.passed and broken[0].relative_error > 0.1


def two_conv_model(relu=ReLU):
    """The README's model, smaller: an untrained float64 CNN (zero biases: black backgrounds give ReLU inputs
    of exactly 0 and tied pooling windows everywhere)."""
    layers = [Conv2D(8, 3), relu(), MaxPool2D(2), Conv2D(8, 3, activation="relu"), MaxPool2D(2), Flatten(),
              Dense(16, activation="relu"), Dense(10, activation="softmax")]
    return minicnn.Sequential(layers, input_shape=(28, 28, 1), dtype="float64", seed=0)


def test_a_correct_model_passes_on_real_mnist_images(mnist):
    """Real digits, before and after some training; the README's check_model(model, x_test[:4], y_test[:4])."""
    (x_train, y_train), (x_test, y_test) = mnist
    model = two_conv_model()
    untrained = check_model(model, x_test[:4], y_test[:4], max_entries=20, verbose=False)
    assert untrained.passed, str(untrained)
    assert sum(result.entries_one_sided + result.entries_skipped for result in untrained) > 0  # kinks were met
    model.compile(minicnn.optimizers.Adam(3e-3)).fit(x_train[:4000], y_train[:4000], epochs=1, batch_size=32,
                                                      verbose=0)
    assert model.evaluate(x_test[:4], y_test[:4])[0] < 0.1  # confident: a small loss to take differences of
    trained = check_model(model, x_test[:4], y_test[:4], max_entries=20, verbose=False)
    assert trained.passed, str(trained)


def test_a_broken_backward_pass_fails_on_real_mnist_images(mnist):
    _, (x_test, y_test) = mnist
    report = check_model(two_conv_model(relu=ReLUWithGradientAtZero), x_test[:4], y_test[:4], max_entries=20,
                         verbose=False)
    assert not report.passed
    assert not next(result for result in report if result.name == "conv2d.bias").passed


def test_maxpool_ties_route_the_gradient_to_the_first_maximum():
    """Every window below is a tie; the first maximum in row-major order gets the whole gradient."""
    x = np.array([[1.0, 1.0, 2.0, 0.0],
                  [1.0, 0.0, 2.0, 2.0],
                  [3.0, 3.0, 5.0, 4.0],
                  [3.0, 3.0, 5.0, 5.0]]).reshape(1, 4, 4, 1)
    layer = MaxPool2D(2)
    layer.build((4, 4, 1), np.float64, None)
    y, cache = layer.forward(x)
    dx = layer.backward(np.array([[10.0, 20.0], [30.0, 40.0]]).reshape(1, 2, 2, 1), cache, [])
    np.testing.assert_array_equal(y[0, :, :, 0], [[1, 2], [3, 5]])
    expected = np.array([[10, 0, 20, 0],
                         [0, 0, 0, 0],
                         [30, 0, 40, 0],
                         [0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_relu_gradient_at_zero_is_zero():
    layer = ReLU()
    layer.build((3,), np.float64, None)
    y, cache = layer.forward(np.array([[-1.0, 0.0, 2.0]]))
    dx = layer.backward(np.ones((1, 3)), cache, [])
    np.testing.assert_array_equal(dx, [[0, 0, 1]])


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (28, 3, 1, 28), (7, 3, 2, 4), (8, 3, 2, 4), (5, 2, 2, 3), (1, 3, 1, 1)])
def test_same_padding_output_sizes_follow_keras(size, kernel, stride, expected):
    from minicnn.layers.base import window_output_size
    out, (before, after) = window_output_size(size, kernel, stride, "same")
    assert out == expected
    assert after - before in (0, 1)  # the extra pixel goes at the end, as in TensorFlow/Keras


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), C> == <x, col2im(C)> for any x and C: col2im is exactly the transpose of im2col."""
    from minicnn.layers.conv2d import col2im_add_into, im2col
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 7, 3))
    columns = rng.standard_normal((2 * 3 * 3, 3 * 3 * 3))
    left = (im2col(x, (3, 3), (2, 2), 3, 3) * columns).sum()
    right = (x * col2im_add_into(columns, np.zeros_like(x), (3, 3), (2, 2), 3, 3)).sum()
    assert left == pytest.approx(right, rel=1e-12)

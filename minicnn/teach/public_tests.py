"""The public tests a student copy gets (tests/test_public.py): one small test per task, named test_<task>, so
that ``python -m pytest tests -k conv2d_backward`` runs one task's. The hidden checks grade; these help."""
from __future__ import annotations

HEADER = '''"""Public tests: one per task (python -m pytest tests -k TASK, e.g. -k conv2d_backward). The autograder runs
hidden checks of its own (more cases, exact reference values): passing these is a good sign, not a grade."""
import numpy as np

from minicnn.gradcheck import check_layer


def rng():
    return np.random.default_rng(0)
'''

TESTS = {
    "relu.forward": '''
def test_relu_forward():
    from minicnn.layers.relu import relu_forward
    y, _ = relu_forward(np.array([[-1.0, 0.0, 2.0]]))
    assert np.array_equal(y, [[0.0, 0.0, 2.0]])
''',
    "relu.backward": '''
def test_relu_backward():
    from minicnn.layers import ReLU
    assert check_layer(ReLU(), (5, 4), verbose=False).passed
''',
    "leaky_relu.forward": '''
def test_leaky_relu_forward():
    from minicnn.layers.leaky_relu import leaky_relu_forward
    y, mask = leaky_relu_forward(np.array([[-1.0, 0.0, 2.0]]), 0.5)
    assert np.array_equal(y, [[-0.5, 0.0, 2.0]]) and np.array_equal(mask, [[False, True, True]])
''',
    "leaky_relu.backward": '''
def test_leaky_relu_backward():
    from minicnn.layers import LeakyReLU
    assert check_layer(LeakyReLU(0.2), (5, 4), verbose=False).passed
''',
    "dense.forward": '''
def test_dense_forward():
    from minicnn.layers.dense import dense_forward
    y, _ = dense_forward(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0))
    assert y.shape == (2, 4) and np.allclose(y[0], [3, 4, 5, 6])
''',
    "dense.backward": '''
def test_dense_backward():
    from minicnn.layers import Dense
    assert check_layer(Dense(4), (3,), batch_size=3, verbose=False).passed
''',
    "softmax.forward": '''
def test_softmax_forward():
    from minicnn.layers.softmax import softmax_forward
    y, _ = softmax_forward(np.array([[0.0, 0.0], [1000.0, 1000.0]]))
    assert np.allclose(y, 0.5)
''',
    "softmax.backward": '''
def test_softmax_backward():
    from minicnn.layers import Softmax
    assert check_layer(Softmax(), (5,), batch_size=3, verbose=False).passed
''',
    "loss.cross_entropy": '''
def test_loss_cross_entropy():
    from minicnn.losses import sparse_softmax_cross_entropy
    loss, dlogits = sparse_softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]), 0.5)
    assert np.isclose(loss, 2 * np.log(4)) and np.allclose(dlogits.sum(axis=1), 0)
''',
    "gradcheck.numerical_gradient": '''
def test_gradcheck_numerical_gradient():
    from minicnn.gradcheck import numerical_gradient
    array = np.array([1.0, 2.0, 3.0])
    gradient = numerical_gradient(lambda: float((array ** 2).sum()), array, [0, 2], 1e-5)
    assert np.allclose(gradient, [2.0, 6.0]) and np.array_equal(array, [1.0, 2.0, 3.0])
''',
    "maxpool2d.forward": '''
def test_maxpool2d_forward():
    from minicnn.layers.maxpool2d import window_maxima
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y, argmax = window_maxima(x, (2, 2), (2, 2), 2, 2)
    assert np.array_equal(y[0, :, :, 0], [[5, 7], [13, 15]]) and np.all(argmax == 3)
''',
    "maxpool2d.backward": '''
def test_maxpool2d_backward():
    from minicnn.layers import MaxPool2D
    assert check_layer(MaxPool2D(2), (4, 6, 2), verbose=False).passed
''',
    "conv2d.im2col": '''
def test_conv2d_im2col():
    from minicnn.layers.conv2d import im2col
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    columns = im2col(x, (2, 2), (1, 1), 2, 2)
    assert columns.shape == (4, 4) and np.array_equal(columns[0], [0, 1, 3, 4])
''',
    "conv2d.col2im": '''
def test_conv2d_col2im():
    from minicnn.layers.conv2d import col2im_add_into
    dx = col2im_add_into(np.ones((4, 4)), np.zeros((1, 3, 3, 1)), (2, 2), (1, 1), 2, 2)
    assert np.array_equal(dx[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
''',
    "conv2d.forward": '''
def test_conv2d_forward():
    from minicnn.layers.conv2d import conv2d_forward
    y, _ = conv2d_forward(np.ones((2, 5, 5, 3)), np.ones((3, 3, 3, 4)), np.zeros(4), (2, 2), "same")
    assert y.shape == (2, 3, 3, 4) and y[0, 1, 1, 0] == 27
''',
    "conv2d.backward": '''
def test_conv2d_backward():
    from minicnn.layers import Conv2D
    assert check_layer(Conv2D(2, 3, strides=2, padding="same"), (5, 6, 2), verbose=False).passed
''',
    "dropout.forward": '''
def test_dropout_forward():
    from minicnn.layers import Dropout
    from minicnn.layers.dropout import dropout_forward
    y, mask = dropout_forward(np.ones((2, 2)), 0.5, np.array([[True, False], [False, True]]))
    assert np.array_equal(y, [[2.0, 0.0], [0.0, 2.0]])
    layer = Dropout(0.5, seed=0)
    layer.build((100,), "float64", None)
    x = np.ones((50, 100))
    assert np.array_equal(layer.forward(x, False)[0], x)              # the identity at inference
    assert abs(layer.forward(x, True)[0].mean() - 1) < 0.05           # the expected output is the input
''',
    "dropout.backward": '''
def test_dropout_backward():
    from minicnn.layers.dropout import dropout_backward
    dx = dropout_backward(np.full((1, 3), 3.0), np.array([[True, False, True]]), 0.25)
    assert np.allclose(dx, [[4.0, 0.0, 4.0]])
''',
    "batch_normalization.backward": '''
def test_batch_normalization_backward():
    from minicnn.layers import BatchNormalization
    assert check_layer(BatchNormalization(), (6,), batch_size=4, verbose=False).passed
''',
    "adam.update": '''
def test_adam_update():
    from minicnn.kernels.optim import adam_update_numpy
    params, m, v = np.ones(3), np.zeros(3), np.zeros(3)
    adam_update_numpy(params, np.full(3, 2.0), m, v, 0.1, 0.1, 0.001, 1e-7)
    assert np.allclose(m, 0.2) and np.allclose(v, 0.004) and np.all(params < 1)
''',
    "adam.step_size": '''
def test_adam_step_size():
    from minicnn.optimizers import Adam
    from minicnn.reference import ReferenceEngine
    adam = Adam(learning_rate=0.1)
    adam.build(np.zeros(2))
    params = np.zeros(2)
    adam.apply(params, np.ones(2), ReferenceEngine.kernels)
    assert np.allclose(params, -0.1, rtol=1e-5)   # Adam's first step is the learning rate, whatever the gradient
''',
    "train.step": '''
def test_train_step():
    from minicnn.losses import softmax_cross_entropy
    from minicnn.reference import ReferenceEngine

    class Scale:  # y = x * w, a layer of the test's own (so that only the training step is tested)
        def __init__(self, w):
            self.w = w

        def forward(self, x, training=False):
            return x * self.w, x

        def backward(self, dy, cache, grads, need_input_grad=True):
            grads[0][...] = (dy * cache).sum(axis=0)
            return dy * self.w if need_input_grad else None

    x, y = rng().standard_normal((4, 3)), np.eye(3)[[0, 1, 2, 0]]   # one-hot labels
    layer, grads = Scale(rng().standard_normal(3)), [[np.zeros(3)]]
    loss, correct, dx = ReferenceEngine([layer]).loss_and_gradients(x, y, grads, 0.25, True)
    assert dx.shape == x.shape and 0 <= correct <= 4
    mean_loss = lambda: softmax_cross_entropy(x * layer.w, y, 1.0)[0] / 4  # noqa: E731
    for i in range(3):
        layer.w[i] += 1e-6
        plus = mean_loss()
        layer.w[i] -= 2e-6
        minus = mean_loss()
        layer.w[i] += 1e-6
        assert np.isclose(grads[0][0][i], (plus - minus) / 2e-6, rtol=1e-5)
''',
}

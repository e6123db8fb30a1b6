"""ReLU: the rectified linear unit, applied elementwise.

Shapes: x and y have any shape, the same one.

    forward:   y  = max(x, 0)
    backward:  dx = dy * [y > 0]        (the slope is 1 where the input was positive, 0 elsewhere)
"""
from __future__ import annotations

from minicnn.kernels.relu import relu_backward as relu_backward_kernel
from minicnn.kernels.relu import relu_forward as relu_forward_kernel
from minicnn.layers.base import Layer


def relu_forward(x):
    """x (any shape) -> y = max(x, 0), cache = y (the mask y > 0 is all backward needs)."""
    y = relu_forward_kernel(x)
    return y, y


def relu_backward(dy, cache):
    """dy (same shape as x) -> dx = dy where the forward output was positive, 0 elsewhere."""
    return relu_backward_kernel(dy, cache)


class ReLU(Layer):
    """``ReLU()``, as ``keras.layers.ReLU`` (or ``activation="relu"`` on the layer before)."""

    def forward(self, x, training=False):
        return relu_forward(x)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return relu_backward(dy, cache) if need_input_grad else None

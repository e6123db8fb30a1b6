"""ReLU: the rectified linear unit, applied elementwise.

Shapes: x and y have any shape, the same one.

    forward:   y  = max(x, 0)
    backward:  dx = dy * [y > 0]        (the slope is 1 where the input was positive, 0 elsewhere;
                                         at exactly x = 0 we use 0, as Keras, TensorFlow and PyTorch do)

NaN stays NaN in the forward pass (``np.maximum`` propagates it), so a diverging model is noticed.
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer


def relu_forward(x):
    """x (any shape) -> y = max(x, 0), cache = y (the mask y > 0 is all backward needs)."""
    # BEGIN SOLUTION task=relu.forward
    y = np.maximum(x, 0)
    return y, y
    # END SOLUTION


def relu_backward(dy, cache):
    """dy (same shape as x) -> dx = dy where the forward output was positive, 0 elsewhere."""
    y = cache
    # BEGIN SOLUTION task=relu.backward
    return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)
    # END SOLUTION


class ReLU(Layer):
    """``ReLU()``, as ``keras.layers.ReLU`` (or ``activation="relu"`` on the layer before)."""

    def forward(self, x, training=False):
        return relu_forward(x)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return relu_backward(dy, cache) if need_input_grad else None

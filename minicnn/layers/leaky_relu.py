"""LeakyReLU: the rectified linear unit with a small slope for negative inputs, applied elementwise.

Shapes: x and y have any shape, the same one. With a = negative_slope (Keras 3's name; default 0.3)::

    forward:   y  = x          where x >= 0
               y  = a * x      where x <  0
    backward:  dx = dy         where x >= 0      (at exactly x = 0 the slope is 1, as Keras on JAX:
               dx = a * dy     where x <  0       jax.nn.leaky_relu is where(x >= 0, x, a * x))

``activation="leaky_relu"`` on Conv2D/Dense is Keras's activation function ``keras.activations.leaky_relu``,
whose default slope is 0.2 (not the layer's 0.3): the model appends ``LeakyReLU(negative_slope=0.2)``.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.layers.base import Layer


def leaky_relu_forward(x, negative_slope):
    """x (any shape) -> y = where(x >= 0, x, a * x), cache = the mask x >= 0."""
    # BEGIN SOLUTION task=leaky_relu.forward
    positive = x >= 0
    y = np.where(positive, x, x * x.dtype.type(negative_slope))
    return y, positive
    # END SOLUTION


def leaky_relu_backward(dy, cache, negative_slope):
    """dy (same shape as x) -> dx = dy where x >= 0, a * dy elsewhere."""
    # BEGIN SOLUTION task=leaky_relu.backward
    positive = cache
    return np.where(positive, dy, dy * dy.dtype.type(negative_slope))
    # END SOLUTION


class LeakyReLU(Layer):
    """``LeakyReLU(negative_slope=0.3)``, as ``keras.layers.LeakyReLU`` (or ``activation="leaky_relu"`` on the
    layer before, which uses Keras's activation default, 0.2)."""

    default_name = "leaky_relu"

    def __init__(self, negative_slope=0.3, name=None):
        super().__init__(name)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.floating, np.integer)) \
                or not math.isfinite(negative_slope) or negative_slope < 0:
            raise ValueError(f"LeakyReLU negative_slope must be a number >= 0 (Keras's rule), got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=False):
        return leaky_relu_forward(x, self.negative_slope)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return leaky_relu_backward(dy, cache, self.negative_slope) if need_input_grad else None

    def get_config(self):
        return {"name": self.name, "negative_slope": self.negative_slope}

"""Flatten: (N, H, W, C) -> (N, H*W*C), in NHWC (channels-last) order, as Keras. Backward reshapes back."""
from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer


class Flatten(Layer):
    """``Flatten()``, as ``keras.layers.Flatten``."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dy, cache, grads, need_input_grad=True):
        return dy.reshape(cache) if need_input_grad else None

"""Softmax: turn a row of scores (logits) into probabilities that sum to 1.

Shapes: x (N, K) -> y (N, K).

    forward:   y_k = exp(x_k - max x) / sum_j exp(x_j - max x)      (subtracting max x avoids overflow)
    backward:  dx  = y * (dy - sum_k dy_k * y_k)                   (the Jacobian dy_i/dx_k = y_i ([i=k] - y_k))

When a model ends in Softmax and trains with cross-entropy, the two are computed together by the fused,
more stable ``minicnn.losses.softmax_cross_entropy`` on the logits; this layer's forward then only serves
``predict``.
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.base import Layer


def softmax_forward(x):
    """x (N, K) -> y (N, K) probabilities, cache = y."""
    # BEGIN SOLUTION task=softmax.forward
    exp = np.exp(x - x.max(axis=-1, keepdims=True))
    y = exp / exp.sum(axis=-1, keepdims=True)
    return y, y
    # END SOLUTION


def softmax_backward(dy, cache):
    """dy (N, K) -> dx (N, K)."""
    y = cache
    # BEGIN SOLUTION task=softmax.backward
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    # END SOLUTION


class Softmax(Layer):
    """``Softmax()``, as ``keras.layers.Softmax`` (or ``activation="softmax"`` on the Dense layer before)."""

    def forward(self, x, training=False):
        return softmax_forward(x)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return softmax_backward(dy, cache) if need_input_grad else None

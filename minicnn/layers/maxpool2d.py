"""MaxPool2D: keep the largest value of every (PH, PW) window, per channel.

Shapes::

    x   (N, H, W, C)
    y   (N, OH, OW, C)     y[n, oy, ox, c] = max_{ky < PH, kx < PW} xp[n, oy*SH + ky, ox*SW + kx, c]

Strides default to the pool size (non-overlapping windows). Padding "valid": OH = (H - PH) // SH + 1, so
the last row/column is dropped when it does not fill a window (an odd 5x5 input pools to 2x2). Padding
"same": OH = ceil(H / SH), the input padded with -inf so padding never wins (as Keras and TensorFlow).

Backward: the maximum is the only input that affected y, so dLoss/dy goes entirely to it; every other input
of the window gets 0. Ties (several inputs equal to the maximum): the first one in row-major window order gets
the gradient, the others 0 (as PyTorch and TensorFlow; see docs/keras-parity.md).
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.base import Pooling2D, window_output_size


def window_slices(offset_y, offset_x, strides, out_h, out_w):
    """The (rows, columns) slices that pick, for every output position, the input at (offset_y, offset_x) of its
    window: rows offset_y, offset_y + SH, ..., out_h of them (and the same across)."""
    return (slice(offset_y, offset_y + strides[0] * (out_h - 1) + 1, strides[0]),
            slice(offset_x, offset_x + strides[1] * (out_w - 1) + 1, strides[1]))


def window_maxima(x, pool_size, strides, out_h, out_w):
    """x (N, H, W, C), padded already -> (y, argmax), each (N, OH, OW, C); argmax = ky * PW + kx, the position
    of the maximum inside its window (np.argmax picks the FIRST maximum: our tie rule)."""
    # BEGIN SOLUTION task=maxpool2d.forward
    taps = []
    for ky in range(pool_size[0]):
        for kx in range(pool_size[1]):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            taps.append(x[:, rows, cols, :])
    windows = np.stack(taps, axis=-1)                                  # (N, OH, OW, C, PH*PW), row-major
    argmax = windows.argmax(axis=-1)                                   # (N, OH, OW, C)
    y = np.take_along_axis(windows, argmax[..., None], axis=-1)[..., 0]
    return y, argmax
    # END SOLUTION


def add_at_maxima(dy, argmax, dx, pool_size, strides):
    """dx[window positions of the maxima] += dy, in place on dx (N, H, W, C): every window sends its gradient to
    the input its maximum came from. Returns dx."""
    # BEGIN SOLUTION task=maxpool2d.backward
    out_h, out_w = dy.shape[1], dy.shape[2]
    for ky in range(pool_size[0]):
        for kx in range(pool_size[1]):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            dx[:, rows, cols, :] += np.where(argmax == ky * pool_size[1] + kx, dy, 0)
    return dx
    # END SOLUTION


def maxpool2d_forward(x, pool_size, strides, padding):
    """x (N, H, W, C) -> y (N, OH, OW, C), cache (the argmax of every window, and the padding)."""
    _, height, width, _ = x.shape
    out_h, pad_h = window_output_size(height, pool_size[0], strides[0], padding)
    out_w, pad_w = window_output_size(width, pool_size[1], strides[1], padding)
    if padding == "same":
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    y, argmax = window_maxima(x, pool_size, strides, out_h, out_w)
    cache = (argmax, x.shape, pool_size, strides, pad_h, pad_w)
    return y, cache


def maxpool2d_backward(dy, cache):
    """dy (N, OH, OW, C) -> dx (N, H, W, C): each window's gradient goes to the position of its maximum."""
    argmax, padded_shape, pool_size, strides, pad_h, pad_w = cache
    dx = add_at_maxima(dy, argmax, np.zeros(padded_shape, dtype=dy.dtype), pool_size, strides)
    return dx[:, pad_h[0]:padded_shape[1] - pad_h[1], pad_w[0]:padded_shape[2] - pad_w[1], :]


class MaxPool2D(Pooling2D):
    """``MaxPool2D(pool_size=2, strides=None, padding="valid")``, as ``keras.layers.MaxPooling2D``."""

    def forward(self, x, training=False):
        return maxpool2d_forward(x, self.pool_size, self.strides, self.padding)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return maxpool2d_backward(dy, cache) if need_input_grad else None

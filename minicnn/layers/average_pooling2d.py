"""AveragePooling2D: the mean of every (PH, PW) window, per channel.

Shapes::

    x   (N, H, W, C)
    y   (N, OH, OW, C)     y[n, oy, ox, c] = sum_{ky < PH, kx < PW} xp[n, oy*SH + ky, ox*SW + kx, c] / count[oy, ox]

Strides default to the pool size. Padding "valid": OH = (H - PH) // SH + 1, every window inside the input,
count = PH * PW. Padding "same": OH = ceil(H / SH), the input padded with zeros, and count[oy, ox] = the number
of REAL (non-padded) inputs under the window, so a border window averages only what it covers (as Keras:
AveragePooling2D(2, padding="same") of a 5x5 input gives x[4, 4] itself at the corner, not x[4, 4] / 4).

Backward: each input under a window receives that window's dy / count (a pixel under several windows, with
strides smaller than the pool, receives the sum)::

    dxp[n, oy*SH + ky, ox*SW + kx, c] += dy[n, oy, ox, c] / count[oy, ox]      then the padding is cut off
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.base import Pooling2D, window_output_size
from minicnn.layers.maxpool2d import window_slices


def window_counts(height, width, pool_size, strides, pad_h, pad_w, out_h, out_w):
    """(OH, OW, 1): how many real (non-padded) inputs each window covers."""
    rows = np.arange(out_h) * strides[0] - pad_h[0]        # first input row of each window (may be < 0)
    cols = np.arange(out_w) * strides[1] - pad_w[0]
    rows_in = np.minimum(rows + pool_size[0], height) - np.maximum(rows, 0)
    cols_in = np.minimum(cols + pool_size[1], width) - np.maximum(cols, 0)
    return (rows_in[:, None] * cols_in[None, :])[:, :, None]


def average_pooling2d_forward(x, pool_size, strides, padding):
    """x (N, H, W, C) -> y (N, OH, OW, C), cache (the window counts, shapes and padding)."""
    _, height, width, _ = x.shape
    out_h, pad_h = window_output_size(height, pool_size[0], strides[0], padding)
    out_w, pad_w = window_output_size(width, pool_size[1], strides[1], padding)
    if padding == "same":
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    total = np.zeros((x.shape[0], out_h, out_w, x.shape[3]), dtype=x.dtype)
    for ky in range(pool_size[0]):
        for kx in range(pool_size[1]):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            total += x[:, rows, cols, :]
    counts = window_counts(height, width, pool_size, strides, pad_h, pad_w, out_h, out_w).astype(x.dtype)
    y = total / counts
    return y, (counts, x.shape, pool_size, strides, pad_h, pad_w)


def average_pooling2d_backward(dy, cache):
    """dy (N, OH, OW, C) -> dx (N, H, W, C): every input of a window gets dy / count of that window."""
    counts, padded_shape, pool_size, strides, pad_h, pad_w = cache
    share = dy / counts
    dx = np.zeros(padded_shape, dtype=dy.dtype)
    out_h, out_w = dy.shape[1], dy.shape[2]
    for ky in range(pool_size[0]):
        for kx in range(pool_size[1]):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            dx[:, rows, cols, :] += share
    return dx[:, pad_h[0]:padded_shape[1] - pad_h[1], pad_w[0]:padded_shape[2] - pad_w[1], :]


class AveragePooling2D(Pooling2D):
    """``AveragePooling2D(pool_size=2, strides=None, padding="valid")``, as ``keras.layers.AveragePooling2D``."""

    default_name = "average_pooling2d"

    def forward(self, x, training=False):
        return average_pooling2d_forward(x, self.pool_size, self.strides, self.padding)

    def backward(self, dy, cache, grads, need_input_grad=True):
        return average_pooling2d_backward(dy, cache) if need_input_grad else None

"""Max-pooling forward (remembering where each maximum was) and backward (ADDING the gradient there), for the
fast engine's pooling layers that are not fused with a convolution.

Shapes (x already padded with -inf where the padding is "same")::

    x      (N, H, W, C)
    y      (N, OH, OW, C)    y[n, oy, ox, c] = max over the (PH, PW) window at (oy*SH, ox*SW)
    argmax (N, OH, OW, C)    integers, the position of that maximum inside its window, ky*PW + kx

Ties: when several inputs of a window share the maximum, the FIRST one in row-major window order wins and
receives all of the gradient (as PyTorch and TensorFlow do). Both twins follow this rule and a test checks it.
NaN: the first NaN of a window wins (as np.argmax, and as PyTorch): a NaN input is never hidden by the pool, so
it reaches the loss (and the training step refuses it) instead of silently poisoning the weight gradients.
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.layers.maxpool2d import add_at_maxima, window_maxima


# ---------------------------------------------------------------- NumPy twins: the layer's own math
def maxpool_forward_numpy(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w):
    """x (N, H, W, C) -> (y, argmax): minicnn/layers/maxpool2d.py's window_maxima."""
    return window_maxima(x, (pool_h, pool_w), (stride_h, stride_w), out_h, out_w)


def maxpool_backward_add_into_numpy(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w):
    """dx += dy at each window's maximum, in place: minicnn/layers/maxpool2d.py's add_at_maxima."""
    return add_at_maxima(dy, argmax, dx, (pool_h, pool_w), (stride_h, stride_w))


# ---------------------------------------------------------------- Numba kernels
@njit(cache=True, nogil=True, twin=maxpool_forward_numpy)
def maxpool_forward_numba(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w):
    batch, _, _, channels = x.shape
    y = np.empty((batch, out_h, out_w, channels), dtype=x.dtype)
    argmax = np.empty((batch, out_h, out_w, channels), dtype=np.int32)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                y0 = oy * stride_h
                x0 = ox * stride_w
                for c in range(channels):
                    best = x[n, y0, x0, c]
                    best_index = 0
                    for ky in range(pool_h):
                        for kx in range(pool_w):
                            value = x[n, y0 + ky, x0 + kx, c]
                            if value > best or (value != value and best == best):  # the first maximum (or NaN) wins
                                best = value
                                best_index = ky * pool_w + kx
                    y[n, oy, ox, c] = best
                    argmax[n, oy, ox, c] = best_index
    return y, argmax


@njit(cache=True, nogil=True, twin=maxpool_backward_add_into_numpy)
def maxpool_backward_add_into_numba(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w):
    batch, out_h, out_w, channels = dy.shape
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                for c in range(channels):
                    index = argmax[n, oy, ox, c]
                    ky = index // pool_w
                    kx = index - ky * pool_w
                    dx[n, oy * stride_h + ky, ox * stride_w + kx, c] += dy[n, oy, ox, c]
    return dx

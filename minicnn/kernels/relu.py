"""ReLU forward and backward, for the fast engine's ReLU layers that are not fused with a Conv2D or Dense.

    forward:   y = max(x, 0)                      any shape
    backward:  dx = dy where y > 0, else 0        (the gradient of max(x, 0) is 1 for x > 0, 0 otherwise;
                                                   at exactly x = 0 we use 0, as Keras, TensorFlow and PyTorch do)
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit


def relu_forward_numpy(x):
    return np.maximum(x, 0)


def relu_backward_numpy(dy, y):
    return np.where(y > 0, dy, 0).astype(dy.dtype)


@njit(cache=True, nogil=True, twin=relu_forward_numpy)
def relu_forward_numba(x):
    flat_x = x.reshape(-1)
    y = np.empty_like(flat_x)
    zero = x.dtype.type(0)
    for i in range(flat_x.size):
        y[i] = zero if flat_x[i] <= zero else flat_x[i]  # NaN stays NaN, as np.maximum
    return y.reshape(x.shape)


@njit(cache=True, nogil=True, twin=relu_backward_numpy)
def relu_backward_numba(dy, y):
    flat_dy = dy.reshape(-1)
    flat_y = y.reshape(-1)
    dx = np.empty_like(flat_dy)
    zero = dy.dtype.type(0)
    for i in range(flat_dy.size):
        dx[i] = flat_dy[i] if flat_y[i] > zero else zero
    return dx.reshape(dy.shape)

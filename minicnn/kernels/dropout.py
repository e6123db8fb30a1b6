"""Dropout forward and backward in training: the mask drawn in the kernel, element by element, from a hash.

    forward:   m[i] = keep(seed, call, offset + i)     the layer's rule (minicnn/layers/dropout.py: SplitMix64 of
               y[i] = x[i] / (1 - rate) if m[i] else 0  (seed, call, index)), so the mask of a thread's rows is
    backward:  dx[i] = dy[i] / (1 - rate) if m[i] else 0  exactly those rows of the whole batch's mask

x, y, dy, dx, mask have any shape, the same one (mask: bool). ``offset``: the index (C order) of x's first element
in the whole batch. The NumPy twins are the layer's own functions.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.layers.dropout import GOLDEN, dropout_backward, dropout_forward, dropout_mask


# ---------------------------------------------------------------- NumPy twins: the layer's own math
def dropout_forward_into_numpy(x, rate, seed, call, offset, y, mask):
    """mask[...] = the layer's keep mask for these elements; y[...] = where(mask, x / (1 - rate), 0). Returns y."""
    mask[...] = dropout_mask(x.shape, rate, seed, call, offset)
    y[...] = dropout_forward(x, rate, mask)[0]
    return y


def dropout_backward_into_numpy(dy, mask, rate, dx):
    """dx[...] = where(mask, dy / (1 - rate), 0). Returns dx."""
    dx[...] = dropout_backward(dy, mask, rate)
    return dx


# ---------------------------------------------------------------- Numba kernels
@njit(cache=True, nogil=True, error_model="numpy")
def _mix_numba(z):
    """SplitMix64's finalizer (the layer's ``mix``) on one uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, error_model="numpy", twin=dropout_forward_into_numpy)
def dropout_forward_into_numba(x, rate, seed, call, offset, y, mask):
    flat_x, flat_y, flat_mask = x.reshape(-1), y.reshape(-1), mask.reshape(-1)
    golden = np.uint64(GOLDEN)
    key = _mix_numba(np.uint64(seed) * golden + np.uint64(call))
    threshold = np.uint64(math.ceil(rate * 16777216.0))  # the layer's dropout_threshold: ceil(rate * 2**24)
    keep = x.dtype.type(1.0 - rate)
    zero = x.dtype.type(0)
    start = np.uint64(offset + 1)
    for i in range(flat_x.size):
        kept = (_mix_numba(key + (start + np.uint64(i)) * golden) >> np.uint64(40)) >= threshold
        flat_mask[i] = kept
        flat_y[i] = flat_x[i] / keep if kept else zero
    return y


@njit(cache=True, nogil=True, error_model="numpy", twin=dropout_backward_into_numpy)
def dropout_backward_into_numba(dy, mask, rate, dx):
    flat_dy, flat_dx, flat_mask = dy.reshape(-1), dx.reshape(-1), mask.reshape(-1)
    keep = dy.dtype.type(1.0 - rate)
    zero = dy.dtype.type(0)
    for i in range(flat_dy.size):
        flat_dx[i] = flat_dy[i] / keep if flat_mask[i] else zero
    return dx

"""Max-pooling forward (remembering where each maximum was) and backward (routing the gradient there).

Shapes (x already padded with -inf where the padding is "same")::

    x      (N, H, W, C)
    y      (N, OH, OW, C)    y[n, oy, ox, c] = max over the (PH, PW) window at (oy*SH, ox*SW)
    argmax (N, OH, OW, C)    int32, the position of that maximum inside its window, ky*PW + kx

Ties: when several inputs of a window share the maximum, the FIRST one in row-major window order wins and
receives all of the gradient (as PyTorch and TensorFlow do). Both twins follow this rule and a test checks it.
"""
from __future__ import annotations

import numpy as np
from minicnn.kernels.jit import njit

from minicnn.backend import pick


# ---------------------------------------------------------------- NumPy twins
def _windows_numpy(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w):
    """(N, OH, OW, C, PH*PW): for every output position, the values of its window, in row-major order."""
    taps = []
    for ky in range(pool_h):
        for kx in range(pool_w):
            taps.append(x[:, ky:ky + stride_h * (out_h - 1) + 1:stride_h,
                          kx:kx + stride_w * (out_w - 1) + 1:stride_w, :])
    return np.stack(taps, axis=-1)


def maxpool_forward_numpy(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w):
    windows = _windows_numpy(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w)
    argmax = windows.argmax(axis=-1).astype(np.int32)  # np.argmax returns the first maximum: our tie rule
    y = np.take_along_axis(windows, argmax[..., None].astype(np.intp), axis=-1)[..., 0]
    return y, argmax


def maxpool_backward_numpy(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w):
    """Add dy onto dx (N, H, W, C) at the position each window's maximum came from, in place."""
    out_h, out_w = dy.shape[1], dy.shape[2]
    for ky in range(pool_h):
        for kx in range(pool_w):
            winner = argmax == ky * pool_w + kx
            dx[:, ky:ky + stride_h * (out_h - 1) + 1:stride_h,
               kx:kx + stride_w * (out_w - 1) + 1:stride_w, :] += np.where(winner, dy, 0)
    return dx


# ---------------------------------------------------------------- Numba kernels
@njit(cache=True, nogil=True)
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
                            if value > best:  # strict: the first maximum wins ties
                                best = value
                                best_index = ky * pool_w + kx
                    y[n, oy, ox, c] = best
                    argmax[n, oy, ox, c] = best_index
    return y, argmax


@njit(cache=True, nogil=True)
def maxpool_backward_numba(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w):
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


# ---------------------------------------------------------------- dispatchers
def maxpool_forward(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w):
    """x (N, H, W, C) -> (y, argmax), each (N, OH, OW, C). See the module docstring."""
    return pick(maxpool_forward_numpy, maxpool_forward_numba)(x, pool_h, pool_w, stride_h, stride_w, out_h, out_w)


def maxpool_backward(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w):
    """Route dy (N, OH, OW, C) into dx (N, H, W, C), in place. See the module docstring."""
    return pick(maxpool_backward_numpy, maxpool_backward_numba)(dy, argmax, dx, pool_h, pool_w, stride_h, stride_w)

"""im2col and col2im: turn a convolution into one matrix multiplication.

A convolution slides a (KH, KW, C) window over the image. im2col copies every window into one row of a matrix::

    x        (N, H, W, C)        already padded
    columns  (N*HO*WO, KH*KW*C)  row r = (n, oy, ox) holds x[n, oy*SH : oy*SH+KH, ox*SW : ox*SW+KW, :] flattened
                                 in (ky, kx, c) order, the order of a Keras kernel (KH, KW, C, F) reshaped to
                                 (KH*KW*C, F)

so that ``columns @ kernel.reshape(KH*KW*C, F)`` is the convolution output reshaped to (N*HO*WO, F).

col2im is its adjoint (the backward pass): it adds every row of a (N*HO*WO, KH*KW*C) gradient matrix back
onto the window it came from, so pixels covered by several windows receive the sum of their gradients.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from minicnn.backend import pick


# ---------------------------------------------------------------- NumPy twins (read these first)
def im2col_numpy(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """x (N, H, W, C) -> columns (N*out_h*out_w, kernel_h*kernel_w*C).

    One strided slice per kernel offset (ky, kx): the slice picks, for every output position, the input pixel
    that the kernel's (ky, kx) tap looks at.
    """
    batch, _, _, channels = x.shape
    columns = np.empty((batch, out_h, out_w, kernel_h, kernel_w, channels), dtype=x.dtype)
    for ky in range(kernel_h):
        for kx in range(kernel_w):
            rows = slice(ky, ky + stride_h * (out_h - 1) + 1, stride_h)
            cols = slice(kx, kx + stride_w * (out_w - 1) + 1, stride_w)
            columns[:, :, :, ky, kx, :] = x[:, rows, cols, :]
    return columns.reshape(batch * out_h * out_w, kernel_h * kernel_w * channels)


def col2im_numpy(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """Add columns (N*out_h*out_w, kernel_h*kernel_w*C) back onto dx (N, H, W, C), in place."""
    batch, _, _, channels = dx.shape
    columns = columns.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    for ky in range(kernel_h):
        for kx in range(kernel_w):
            rows = slice(ky, ky + stride_h * (out_h - 1) + 1, stride_h)
            cols = slice(kx, kx + stride_w * (out_w - 1) + 1, stride_w)
            dx[:, rows, cols, :] += columns[:, :, :, ky, kx, :]
    return dx


# ---------------------------------------------------------------- Numba kernels (same results, fast)
@njit(cache=True, nogil=True)
def im2col_numba(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    batch, _, _, channels = x.shape
    columns = np.empty((batch * out_h * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for ky in range(kernel_h):
                    for kx in range(kernel_w):
                        base = (ky * kernel_w + kx) * channels
                        for c in range(channels):
                            columns[row, base + c] = x[n, oy * stride_h + ky, ox * stride_w + kx, c]
    return columns


@njit(cache=True, nogil=True)
def col2im_numba(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    batch, _, _, channels = dx.shape
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for ky in range(kernel_h):
                    for kx in range(kernel_w):
                        base = (ky * kernel_w + kx) * channels
                        for c in range(channels):
                            dx[n, oy * stride_h + ky, ox * stride_w + kx, c] += columns[row, base + c]
    return dx


# ---------------------------------------------------------------- dispatchers
def im2col(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """See :func:`im2col_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(im2col_numpy, im2col_numba)(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)


def col2im(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """See :func:`col2im_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(col2im_numpy, col2im_numba)(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)

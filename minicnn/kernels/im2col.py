"""im2col and col2im for the fast engine, with the zero padding built in and the output written into a buffer.

The layer file minicnn/layers/conv2d.py explains im2col (read it first): every KH x KW x C window of the
padded input becomes one row of a matrix, so the convolution is one matrix product::

    x        (N, H, W, C)        NOT padded
    columns  (N*OH*OW, KH*KW*C)  row (n, oy, ox) = the window at (oy*SH - pad_top, ox*SW - pad_left), (ky, kx, c)
                                 order; taps that fall in the padding read 0

``im2col_into`` writes the columns into a buffer the caller gives (so the fast engine reuses its buffers) and
never builds the padded copy. ``col2im_into`` is its adjoint: it OVERWRITES dx (N, H, W, C) with the sum of
every row added back onto its window, the taps in the padding dropped.
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.layers.conv2d import col2im_add_into, im2col


# ---------------------------------------------------------------- NumPy twins (read these first)
def _zero_padded(x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """x zero-padded as the windows of an (out_h, out_w) output need it (the padding im2col_into implies)."""
    _, height, width, _ = x.shape
    pad_bottom = max(0, (out_h - 1) * stride_h + kernel_h - height - pad_top)
    pad_right = max(0, (out_w - 1) * stride_w + kernel_w - width - pad_left)
    return np.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))


def im2col_into_numpy(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """columns[...] = im2col of x zero-padded by (pad_top, pad_left); columns is (N*out_h*out_w, KH*KW*C)."""
    padded = _zero_padded(x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    columns[...] = im2col(padded, (kernel_h, kernel_w), (stride_h, stride_w), out_h, out_w)
    return columns


def col2im_into_numpy(columns, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """dx[...] = col2im of columns for an input zero-padded by (pad_top, pad_left), the padding cut off again
    (dx is OVERWRITTEN: it is the whole input gradient)."""
    _, height, width, _ = dx.shape
    padded = np.zeros_like(_zero_padded(dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
                                        out_h, out_w))
    col2im_add_into(columns, padded, (kernel_h, kernel_w), (stride_h, stride_w), out_h, out_w)
    dx[...] = padded[:, pad_top:pad_top + height, pad_left:pad_left + width, :]
    return dx


# ---------------------------------------------------------------- Numba kernels (same results, fast)
@njit(cache=True, nogil=True, twin=im2col_into_numpy)
def im2col_into_numba(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    batch, height, width, channels = x.shape
    zero = x.dtype.type(0)
    for n in range(batch):
        for oy in range(out_h):
            iy0 = oy * stride_h - pad_top
            rows_inside = iy0 >= 0 and iy0 + kernel_h <= height
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                ix0 = ox * stride_w - pad_left
                if rows_inside and ix0 >= 0 and ix0 + kernel_w <= width:  # the whole window is inside: no checks
                    if channels == 1:  # (grayscale input: a loop of one channel would cost more than the copy)
                        for ky in range(kernel_h):
                            for kx in range(kernel_w):
                                columns[row, ky * kernel_w + kx] = x[n, iy0 + ky, ix0 + kx, 0]
                    else:
                        for ky in range(kernel_h):
                            for kx in range(kernel_w):
                                base = (ky * kernel_w + kx) * channels
                                for c in range(channels):
                                    columns[row, base + c] = x[n, iy0 + ky, ix0 + kx, c]
                    continue
                for ky in range(kernel_h):
                    iy = iy0 + ky
                    for kx in range(kernel_w):
                        ix = ix0 + kx
                        base = (ky * kernel_w + kx) * channels
                        if 0 <= iy < height and 0 <= ix < width:
                            for c in range(channels):
                                columns[row, base + c] = x[n, iy, ix, c]
                        else:
                            for c in range(channels):
                                columns[row, base + c] = zero
    return columns


@njit(cache=True, nogil=True, twin=col2im_into_numpy)
def col2im_into_numba(columns, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    batch, height, width, channels = dx.shape
    flat = dx.reshape(-1)
    zero = dx.dtype.type(0)
    for i in range(flat.size):
        flat[i] = zero
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for ky in range(kernel_h):
                    iy = oy * stride_h + ky - pad_top
                    if iy < 0 or iy >= height:
                        continue
                    for kx in range(kernel_w):
                        ix = ox * stride_w + kx - pad_left
                        if ix < 0 or ix >= width:
                            continue
                        base = (ky * kernel_w + kx) * channels
                        for c in range(channels):
                            dx[n, iy, ix, c] += columns[row, base + c]
    return dx

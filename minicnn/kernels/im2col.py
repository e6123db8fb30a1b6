"""im2col and col2im: turn a convolution into one matrix multiplication.

A convolution slides a (KH, KW, C) window over the image. im2col copies every window into one row of a matrix::

    x        (N, H, W, C)        already padded
    columns  (N*HO*WO, KH*KW*C)  row r = (n, oy, ox) holds x[n, oy*SH : oy*SH+KH, ox*SW : ox*SW+KW, :] flattened
                                 in (ky, kx, c) order, the order of a Keras kernel (KH, KW, C, F) reshaped to
                                 (KH*KW*C, F)

so that ``columns @ kernel.reshape(KH*KW*C, F)`` is the convolution output reshaped to (N*HO*WO, F).

col2im is its adjoint (the backward pass): it adds every row of a (N*HO*WO, KH*KW*C) gradient matrix back
onto the window it came from, so pixels covered by several windows receive the sum of their gradients.

The ``*_padded`` versions (used by the fast execution path, ``minicnn/execution.py``) do the same on an input
that is zero-padded by ``pad_top`` rows and ``pad_left`` columns (and as much as the windows need at the bottom
and right) WITHOUT building the padded copy: taps that fall in the padding read 0 (im2col) or are dropped
(col2im). They write into an output array the caller gives, so the fast path can reuse its buffers.
"""
from __future__ import annotations

import numpy as np
from minicnn.kernels.jit import njit

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


def _zero_padded(x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """x zero-padded as the windows of an (out_h, out_w) output need it (the padding im2col_padded implies)."""
    _, height, width, _ = x.shape
    pad_bottom = max(0, (out_h - 1) * stride_h + kernel_h - height - pad_top)
    pad_right = max(0, (out_w - 1) * stride_w + kernel_w - width - pad_left)
    return np.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))


def im2col_padded_numpy(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """columns[...] = im2col of x zero-padded by (pad_top, pad_left); columns is (N*out_h*out_w, KH*KW*C)."""
    padded = _zero_padded(x, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w)
    columns[...] = im2col_numpy(padded, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)
    return columns


def col2im_padded_numpy(columns, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """dx[...] = col2im of columns, for an input zero-padded by (pad_top, pad_left), padding cut off again.

    Unlike col2im_numpy this OVERWRITES dx (N, H, W, C): it is the whole input gradient, not an addition to it.
    """
    _, height, width, _ = dx.shape
    padded = np.zeros_like(_zero_padded(dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
                                        out_h, out_w))
    col2im_numpy(columns, padded, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)
    dx[...] = padded[:, pad_top:pad_top + height, pad_left:pad_left + width, :]
    return dx


# ---------------------------------------------------------------- Numba kernels (same results, fast)
@njit(cache=True, nogil=True)
def im2col_numba(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    batch, _, _, channels = x.shape
    columns = np.empty((batch * out_h * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    if channels == 1:  # grayscale input: one long loop along each output row per tap (a loop over ONE channel
        for n in range(batch):  # in the innermost place would cost more than the copy)
            for oy in range(out_h):
                first = (n * out_h + oy) * out_w
                for ky in range(kernel_h):
                    for kx in range(kernel_w):
                        tap = ky * kernel_w + kx
                        for ox in range(out_w):
                            columns[first + ox, tap] = x[n, oy * stride_h + ky, ox * stride_w + kx, 0]
        return columns
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


@njit(cache=True, nogil=True)
def im2col_padded_numba(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
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


@njit(cache=True, nogil=True)
def col2im_padded_numba(columns, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
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


# ---------------------------------------------------------------- dispatchers
def im2col(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """See :func:`im2col_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(im2col_numpy, im2col_numba)(x, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)


def col2im(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w):
    """See :func:`col2im_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(col2im_numpy, col2im_numba)(columns, dx, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w)


def im2col_padded(x, columns, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """See :func:`im2col_padded_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(im2col_padded_numpy, im2col_padded_numba)(x, columns, kernel_h, kernel_w, stride_h, stride_w,
                                                          pad_top, pad_left, out_h, out_w)


def col2im_padded(columns, dx, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """See :func:`col2im_padded_numpy`; runs the implementation selected in ``minicnn.backend``."""
    return pick(col2im_padded_numpy, col2im_padded_numba)(columns, dx, kernel_h, kernel_w, stride_h, stride_w,
                                                          pad_top, pad_left, out_h, out_w)

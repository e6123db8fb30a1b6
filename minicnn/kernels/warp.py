"""The augmentation layers' affine warp of an NHWC batch (bilinear or nearest, Keras's fill modes) and its transpose.

The math, and the readable NumPy versions the reference engine runs, are in minicnn/layers/image_transform.py
(``affine_warp``, ``affine_warp_backward``); these are their Numba twins, one pass over the output pixels: for each,
the (up to) 4 input pixels and weights once, then every channel. Coordinates and sums in float64, as the twins.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.layers.image_transform import affine_warp, affine_warp_backward

affine_warp_numpy = affine_warp
affine_warp_backward_numpy = affine_warp_backward


@njit(cache=True, nogil=True)
def _fix_index(index, size, mode):
    """An integer index mapped into [0, size) by the fill mode (0 reflect, 1 wrap, 3 nearest); -1 for a constant
    fill (mode 2) outside the image."""
    if mode == 0:
        index = index % (2 * size)  # (Python's modulo: never negative)
        return 2 * size - 1 - index if index >= size else index
    if mode == 1:
        return index % size
    if mode == 3:
        return min(max(index, 0), size - 1)
    return index if 0 <= index < size else -1


@njit(cache=True, nogil=True)
def _round_half_even(value):
    lower = math.floor(value)
    rest = value - lower
    if rest > 0.5 or (rest == 0.5 and lower % 2 == 1):
        lower += 1
    return int(lower)


@njit(cache=True, nogil=True)
def _source(a0, a1, a2, b0, b1, b2, row, column, height, width, fill_mode, nearest):
    """Where output pixel (row, column) reads from: rows r0, r1 and columns k0, k1 of the input (fixed by the fill
    mode; -1 outside for a constant fill) and the fractions fy, fx; with ``nearest``, the one pixel (r0, k0)."""
    x_in = a0 * column + a1 * row + a2
    y_in = b0 * column + b1 * row + b2
    if nearest:
        r = _fix_index(_round_half_even(y_in), height, fill_mode)
        k = _fix_index(_round_half_even(x_in), width, fill_mode)
        return r, r, k, k, 0.0, 0.0
    y0 = math.floor(y_in)
    x0 = math.floor(x_in)
    row0, column0 = int(y0), int(x0)
    if 0 <= row0 < height - 1 and 0 <= column0 < width - 1:  # all four inside (most pixels): nothing to fix
        return row0, row0 + 1, column0, column0 + 1, y_in - y0, x_in - x0
    return (_fix_index(row0, height, fill_mode), _fix_index(row0 + 1, height, fill_mode),
            _fix_index(column0, width, fill_mode), _fix_index(column0 + 1, width, fill_mode), y_in - y0, x_in - x0)


@njit(cache=True, nogil=True)
def _read(images, n, row, column, c, fill_value):
    """images[n, row, column, c], or fill_value for a constant fill outside the image (row or column -1)."""
    if row < 0 or column < 0:
        return fill_value
    return images[n, row, column, c]


@njit(cache=True, nogil=True, twin=affine_warp)
def affine_warp_numba(images, transforms, fill_mode, fill_value, nearest):
    count, height, width, channels = images.shape
    out = np.empty_like(images)
    for n in range(count):
        a0, a1, a2, b0, b1, b2 = (transforms[n, 0], transforms[n, 1], transforms[n, 2], transforms[n, 3],
                                  transforms[n, 4], transforms[n, 5])
        for row in range(height):
            for column in range(width):
                r0, r1, k0, k1, fy, fx = _source(a0, a1, a2, b0, b1, b2, row, column, height, width, fill_mode,
                                                 nearest)
                if nearest:
                    r, k = r0, k0
                    for c in range(channels):
                        out[n, row, column, c] = _read(images, n, r, k, c, fill_value)
                    continue
                w00, w01 = (1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx
                w10, w11 = fy * (1.0 - fx), fy * fx
                for c in range(channels):  # (in the twin's order: the four corners, then the cast)
                    total = 0.0
                    total += w00 * _read(images, n, r0, k0, c, fill_value)
                    total += w01 * _read(images, n, r0, k1, c, fill_value)
                    total += w10 * _read(images, n, r1, k0, c, fill_value)
                    total += w11 * _read(images, n, r1, k1, c, fill_value)
                    out[n, row, column, c] = total
    return out


@njit(cache=True, nogil=True)
def _scatter(grad, n, row, column, weight, output_grad, n_out, out_row, out_column):
    if row < 0 or column < 0:  # a constant fill: no input pixel to send the gradient to
        return
    for c in range(grad.shape[3]):
        grad[n, row, column, c] += weight * output_grad[n_out, out_row, out_column, c]


@njit(cache=True, nogil=True, twin=affine_warp_backward)
def affine_warp_backward_numba(output_grad, transforms, fill_mode, nearest):
    count, height, width, channels = output_grad.shape
    grad = np.zeros(output_grad.shape, dtype=np.float64)
    for n in range(count):
        a0, a1, a2, b0, b1, b2 = (transforms[n, 0], transforms[n, 1], transforms[n, 2], transforms[n, 3],
                                  transforms[n, 4], transforms[n, 5])
        for row in range(height):
            for column in range(width):
                r0, r1, k0, k1, fy, fx = _source(a0, a1, a2, b0, b1, b2, row, column, height, width, fill_mode,
                                                 nearest)
                if nearest:
                    _scatter(grad, n, r0, k0, 1.0, output_grad, n, row, column)
                    continue
                _scatter(grad, n, r0, k0, (1.0 - fy) * (1.0 - fx), output_grad, n, row, column)
                _scatter(grad, n, r0, k1, (1.0 - fy) * fx, output_grad, n, row, column)
                _scatter(grad, n, r1, k0, fy * (1.0 - fx), output_grad, n, row, column)
                _scatter(grad, n, r1, k1, fy * fx, output_grad, n, row, column)
    return grad.astype(output_grad.dtype)

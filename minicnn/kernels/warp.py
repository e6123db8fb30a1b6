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
def _corners(transform, row, column, height, width, mode, nearest, rows, columns, weights):
    """Fill rows/columns/weights (4 each) with the input pixels output (row, column) reads; returns how many."""
    x_in = transform[0] * column + transform[1] * row + transform[2]
    y_in = transform[3] * column + transform[4] * row + transform[5]
    if nearest:
        rows[0] = _fix_index(_round_half_even(y_in), height, mode)
        columns[0] = _fix_index(_round_half_even(x_in), width, mode)
        weights[0] = 1.0
        return 1
    y0 = math.floor(y_in)
    x0 = math.floor(x_in)
    fy = y_in - y0
    fx = x_in - x0
    count = 0
    for dy in range(2):
        for dx in range(2):
            rows[count] = _fix_index(int(y0) + dy, height, mode)
            columns[count] = _fix_index(int(x0) + dx, width, mode)
            weights[count] = (fy if dy else 1.0 - fy) * (fx if dx else 1.0 - fx)
            count += 1
    return count


@njit(cache=True, nogil=True, twin=affine_warp)
def affine_warp_numba(images, transforms, fill_mode, fill_value, nearest):
    count, height, width, channels = images.shape
    out = np.empty_like(images)
    rows = np.empty(4, dtype=np.int64)
    columns = np.empty(4, dtype=np.int64)
    weights = np.empty(4, dtype=np.float64)
    sums = np.empty(channels, dtype=np.float64)
    for n in range(count):
        for row in range(height):
            for column in range(width):
                corners = _corners(transforms[n], row, column, height, width, fill_mode, nearest, rows, columns,
                                   weights)
                sums[:] = 0.0
                for k in range(corners):
                    if rows[k] < 0 or columns[k] < 0:  # a constant fill outside the image
                        for c in range(channels):
                            sums[c] += weights[k] * fill_value
                    else:
                        for c in range(channels):
                            sums[c] += weights[k] * images[n, rows[k], columns[k], c]
                for c in range(channels):
                    out[n, row, column, c] = sums[c]
    return out


@njit(cache=True, nogil=True, twin=affine_warp_backward)
def affine_warp_backward_numba(output_grad, transforms, fill_mode, nearest):
    count, height, width, channels = output_grad.shape
    grad = np.zeros(output_grad.shape, dtype=np.float64)
    rows = np.empty(4, dtype=np.int64)
    columns = np.empty(4, dtype=np.int64)
    weights = np.empty(4, dtype=np.float64)
    for n in range(count):
        for row in range(height):
            for column in range(width):
                corners = _corners(transforms[n], row, column, height, width, fill_mode, nearest, rows, columns,
                                   weights)
                for k in range(corners):
                    if rows[k] >= 0 and columns[k] >= 0:
                        for c in range(channels):
                            grad[n, rows[k], columns[k], c] += weights[k] * output_grad[n, row, column, c]
    return grad.astype(output_grad.dtype)

"""BatchNormalization in training: the batch statistics in ONE pass over x, then the affine map; backward in two.

The arrays are (M, F) rows (x.reshape(-1, F), channels last: M = N*H*W after Conv2D). The statistics are those of
minicnn/layers/batch_normalization.py, computed so that threads can each do their rows and add up:

``batch_norm_sums_into``          sums[0] += sum(x - shift), sums[1] += sum((x - shift)**2), per feature, in
                                  float64 (one pass; ``shift`` = the moving mean, common to every thread, keeps
                                  E[d**2] - E[d]**2 from cancelling): mean = shift + s0/M, var = s1/M - (s0/M)**2
``batch_norm_forward_into``       y = x * scale + shift (scale = gamma * inv, shift = beta - mean * scale: the
                                  layer's batch_normalization_forward), then relu(y) if ``relu`` (a ReLU after
                                  the BatchNormalization, fused: the layers' relu_forward)
``batch_norm_backward_sums_into`` sums[0] += sum(g) (dbeta), sums[1] += sum(g * xhat) (dgamma), float64
``batch_norm_backward_into``      dx = scale * (g - dbeta/M - xhat * dgamma/M)  (the layer's backward in training)

with xhat = (x - mean) * inv computed on the fly (nothing but x and y are kept from forward), and g = dy, or
with ``relu`` dy where y > 0, else 0 (the layers' relu_backward). ``slope`` > 0 (relu False): a LeakyReLU after
it instead, leaky_relu(y, slope) forward (layers/leaky_relu.py: y >= 0 keeps y, else slope * y), and backward
g = dy where the output y >= 0, else slope * dy (for slope > 0 the output keeps the sign of its input).
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.kernels.relu import relu_backward_numpy, relu_forward_numpy
from minicnn.layers.leaky_relu import leaky_relu_backward, leaky_relu_forward


# ---------------------------------------------------------------- NumPy twins
def batch_norm_sums_into_numpy(x, shift, sums):
    """sums (2, F) float64 += [sum(x - shift), sum((x - shift)**2)] over the rows of x (M, F). Returns sums."""
    d = x.astype(np.float64) - shift
    sums[0] += d.sum(axis=0)
    sums[1] += np.einsum("ij,ij->j", d, d)
    return sums


def batch_norm_forward_into_numpy(x, scale, shift, relu, y, slope=0.0):
    """y[...] = x * scale + shift [then relu, or leaky_relu if slope > 0], (M, F) with (F,) per-feature scale and
    shift (x.dtype). Returns y."""
    np.multiply(x, scale, out=y)
    y += shift
    if relu:
        y[...] = relu_forward_numpy(y)
    elif slope > 0:
        y[...] = leaky_relu_forward(y, slope)[0]
    return y


def _activation_backward(dy, y, relu, slope):
    """g: dy through the ReLU or LeakyReLU after the BatchNormalization (its output y), or dy."""
    if relu:
        return relu_backward_numpy(dy, y)
    if slope > 0:
        return leaky_relu_backward(dy, y >= 0, slope)
    return dy


def batch_norm_backward_sums_into_numpy(dy, y, relu, x, mean, inv, sums, slope=0.0):
    """sums (2, F) float64 += [sum(g), sum(g * xhat)], xhat = (x - mean) * inv, g = dy [* (y > 0)]. Returns
    sums."""
    dy = _activation_backward(dy, y, relu, slope)
    xhat = (x - mean) * inv
    sums[0] += dy.sum(axis=0, dtype=np.float64)
    sums[1] += np.einsum("ij,ij->j", dy.astype(np.float64), xhat.astype(np.float64))
    return sums


def batch_norm_backward_into_numpy(dy, y, relu, x, mean, inv, scale, dbeta_mean, dgamma_mean, dx, slope=0.0):
    """dx[...] = scale * (g - dbeta_mean - xhat * dgamma_mean) (dbeta_mean = dbeta / M, ...). Returns dx."""
    dy = _activation_backward(dy, y, relu, slope)
    xhat = (x - mean) * inv
    xhat *= -dgamma_mean
    xhat += dy
    xhat -= dbeta_mean
    np.multiply(xhat, scale, out=dx)
    return dx


# ---------------------------------------------------------------- Numba kernels
@njit(cache=True, nogil=True, error_model="numpy", twin=batch_norm_sums_into_numpy)
def batch_norm_sums_into_numba(x, shift, sums):
    rows, features = x.shape
    total = np.zeros(features)
    squares = np.zeros(features)
    for m in range(rows):
        for f in range(features):
            d = np.float64(x[m, f]) - shift[f]
            total[f] += d
            squares[f] += d * d
    for f in range(features):
        sums[0, f] += total[f]
        sums[1, f] += squares[f]
    return sums


@njit(cache=True, nogil=True, error_model="numpy", twin=batch_norm_forward_into_numpy)
def batch_norm_forward_into_numba(x, scale, shift, relu, y, slope=0.0):
    rows, features = x.shape
    zero = x.dtype.type(0)
    leaky = not relu and slope > 0
    negative_slope = x.dtype.type(slope)
    for m in range(rows):
        for f in range(features):
            value = x[m, f] * scale[f] + shift[f]
            if relu and value <= zero:  # (NaN stays NaN, as np.maximum)
                value = zero
            elif leaky and not value >= zero:
                value *= negative_slope
            y[m, f] = value
    return y


@njit(cache=True, nogil=True, error_model="numpy", twin=batch_norm_backward_sums_into_numpy)
def batch_norm_backward_sums_into_numba(dy, y, relu, x, mean, inv, sums, slope=0.0):
    rows, features = x.shape
    total = np.zeros(features)
    products = np.zeros(features)
    zero = y.dtype.type(0)
    leaky = not relu and slope > 0
    negative_slope = dy.dtype.type(slope)
    for m in range(rows):
        for f in range(features):
            if relu and not y[m, f] > zero:
                continue
            gradient = dy[m, f]
            if leaky and not y[m, f] >= zero:
                gradient *= negative_slope  # (in dy's dtype, as the twin)
            gradient = np.float64(gradient)
            total[f] += gradient
            products[f] += gradient * np.float64((x[m, f] - mean[f]) * inv[f])
    for f in range(features):
        sums[0, f] += total[f]
        sums[1, f] += products[f]
    return sums


@njit(cache=True, nogil=True, error_model="numpy", twin=batch_norm_backward_into_numpy)
def batch_norm_backward_into_numba(dy, y, relu, x, mean, inv, scale, dbeta_mean, dgamma_mean, dx, slope=0.0):
    rows, features = x.shape
    zero = dy.dtype.type(0)
    leaky = not relu and slope > 0
    negative_slope = dy.dtype.type(slope)
    for m in range(rows):
        for f in range(features):
            gradient = dy[m, f]
            if relu and not y[m, f] > zero:
                gradient = zero
            elif leaky and not y[m, f] >= zero:
                gradient *= negative_slope
            xhat = (x[m, f] - mean[f]) * inv[f]
            dx[m, f] = (gradient - dbeta_mean[f] - xhat * dgamma_mean[f]) * scale[f]
    return dx

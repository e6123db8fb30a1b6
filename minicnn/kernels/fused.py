"""Fused kernels: several layers' elementwise work done in ONE pass over memory.

The layer-by-layer path runs Conv2D, then ReLU, then MaxPool2D, each reading and writing a whole activation
array (at batch 128 the first convolution's output is 22 MB). The fast engine (``minicnn/fast/``)
instead computes a convolution a few images at a time and hands each small, cache-resident result to one kernel
that does what the next layers would have done:

``conv_epilogue_forward_into``   z (the convolution without bias) -> y = maxpool(relu(z + bias)), and the argmax
``conv_epilogue_backward_into``  dy (gradient of y) -> dz (gradient of z) and the bias gradient
                                 (both: with ``slope`` > 0 and relu False, leaky_relu(z + bias, slope) instead)
``bias_relu_forward_in_place``       z += bias, then z = relu(z), in place (Dense + ReLU)
``bias_relu_backward_into``      dz = dy * [y > 0], dbias = sum of dz over the batch
``bias_leaky_relu_forward_in_place``  z += bias, then z = leaky_relu(z, slope), in place, and the mask z >= 0
``bias_leaky_relu_backward_into``     dz = dy where the mask, slope * dy elsewhere; dbias (Dense + LeakyReLU)

Shapes (NHWC)::

    z, dz       (N, H, W, F)       convolution output without bias, and its gradient
    bias, dbias (F,)
    y, dy       (N, OH, OW, F)     after the pool; with pool 1x1 / stride 1 (no pooling) OH = H, OW = W
    argmax      (N, OH, OW, F)     uint8 (or int32), the position of each maximum inside its window, ky*PW + kx

The pool's window at output (oy, ox) starts at row oy*SH - pad_top, column ox*SW - pad_left of z (the padding of
a "same" pool). Taps that fall outside z are skipped, as if they held -inf (Keras's padding never wins).

The rules are exactly the layers' (see layers/relu.py and layers/maxpool2d.py): relu(v) = 0 if v <= 0 else v
(so NaN stays NaN and a diverging model is noticed);
the FIRST maximum in row-major window order wins ties; backward, a window's gradient goes to its maximum, and
through the ReLU only where the maximum (the pooled output) is > 0. So the NumPy twins below are literally the
layers' own NumPy twins called one after another, and the fused path gives the layer path's numbers.

LeakyReLU (``slope`` > 0; a LeakyReLU of slope 0 is not fused): the layer's rule, x >= 0 keeps x, else slope * x
(layers/leaky_relu.py), applied to every tap before the maximum is taken. Backward, the gradient at a window's
maximum is dy where the pooled output y >= 0, else slope * dy: for slope > 0 the activation keeps the sign, so
y >= 0 exactly where the layer's mask x >= 0 is true (except an x so tiny and negative that slope * x rounds to
-0.0, a denormal that does not happen in practice).
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.kernels.pooling import maxpool_backward_add_into_numpy, maxpool_forward_numpy
from minicnn.kernels.relu import relu_backward_numpy, relu_forward_numpy
from minicnn.layers.leaky_relu import leaky_relu_backward, leaky_relu_forward


def _pool_padding(height, width, out_h, out_w, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """((top, bottom), (left, right)) padding of z that the pool windows need."""
    bottom = max(0, (out_h - 1) * stride_h + pool_h - height - pad_top)
    right = max(0, (out_w - 1) * stride_w + pool_w - width - pad_left)
    return (pad_top, bottom), (pad_left, right)


# ---------------------------------------------------------------- NumPy twins (read these first)
def conv_epilogue_forward_into_numpy(z, bias, relu, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, y, argmax,
                                     slope=0.0):
    """y[...] = maxpool(relu(z + bias)) (or maxpool(leaky_relu(z + bias, slope)) if slope > 0);
    argmax[...] = where each maximum was. Returns y."""
    _, height, width, _ = z.shape
    _, out_h, out_w, _ = y.shape
    activation = z + bias
    if relu:
        activation = relu_forward_numpy(activation)
    elif slope > 0:
        activation, _ = leaky_relu_forward(activation, slope)
    pad_h, pad_w = _pool_padding(height, width, out_h, out_w, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    activation = np.pad(activation, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    pooled, where = maxpool_forward_numpy(activation, pool_h, pool_w, stride_h, stride_w, out_h, out_w)
    y[...] = pooled
    argmax[...] = where
    return y


def conv_epilogue_backward_into_numpy(dy, y, argmax, relu, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                                 dz, dbias, slope=0.0):
    """dz[...] = gradient of z; dbias += its sum over (N, H, W). Returns dz."""
    _, height, width, _ = dz.shape
    _, out_h, out_w, _ = dy.shape
    if relu:
        # The ReLU passes a gradient only where its output was > 0. At a window's maximum that output IS the
        # pooled value y, and everywhere else the pool sends nothing anyway: mask dy with y > 0.
        dy = relu_backward_numpy(dy, y)
    elif slope > 0:  # the same for the LeakyReLU: its mask x >= 0 is y >= 0 at the maximum
        dy = leaky_relu_backward(dy, y >= 0, slope)
    pad_h, pad_w = _pool_padding(height, width, out_h, out_w, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    padded = np.zeros((dz.shape[0], height + sum(pad_h), width + sum(pad_w), dz.shape[3]), dtype=dz.dtype)
    maxpool_backward_add_into_numpy(dy, argmax, padded, pool_h, pool_w, stride_h, stride_w)
    dz[...] = padded[:, pad_h[0]:pad_h[0] + height, pad_w[0]:pad_w[0] + width, :]
    dbias += dz.sum(axis=(0, 1, 2))
    return dz


def bias_relu_forward_in_place_numpy(z, bias, relu):
    """z = relu(z + bias) (or z + bias if not relu), in place on z (N, F). Returns z."""
    z += bias
    if relu:
        z[...] = relu_forward_numpy(z)
    return z


def bias_relu_backward_into_numpy(dy, y, relu, dz, dbias):
    """dz[...] = dy * [y > 0] (or dy if not relu); dbias[...] = dz summed over the batch. Returns dz."""
    dz[...] = relu_backward_numpy(dy, y) if relu else dy
    dbias[...] = dz.sum(axis=0)
    return dz


def bias_leaky_relu_forward_in_place_numpy(z, bias, slope, positive):
    """z = leaky_relu(z + bias) in place on z (N, F), positive[...] = (z + bias >= 0): the layer's rule (x >= 0
    keeps x, else slope * x; minicnn/layers/leaky_relu.py). Returns z."""
    z += bias
    z[...], positive[...] = leaky_relu_forward(z, slope)
    return z


def bias_leaky_relu_backward_into_numpy(dy, positive, slope, dz, dbias):
    """dz[...] = dy where positive, slope * dy elsewhere; dbias[...] = dz summed over the batch. Returns dz."""
    dz[...] = leaky_relu_backward(dy, positive, slope)
    dbias[...] = dz.sum(axis=0)
    return dz


# ---------------------------------------------------------------- Numba kernels (same results, fast)
# error_model="numpy": no Python-style checks for division by zero, which would stop loops from vectorising.
@njit(cache=True, nogil=True, error_model="numpy", twin=conv_epilogue_forward_into_numpy)
def conv_epilogue_forward_into_numba(z, bias, relu, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, y, argmax,
                                     slope=0.0):
    batch, height, width, filters = z.shape
    _, out_h, out_w, _ = y.shape
    zero = z.dtype.type(0)
    leaky = not relu and slope > 0
    negative_slope = z.dtype.type(slope)
    if (pool_h == 2 and pool_w == 2 and stride_h == 2 and stride_w == 2 and pad_top == 0 and pad_left == 0
            and 2 * out_h <= height and 2 * out_w <= width):
        # The usual 2x2 pool, windows side by side: the maximum of the four values first, then the ReLU. Same
        # result: if the maximum is <= 0 all four become 0 and the first (index 0) wins the tie; otherwise the
        # ReLU changes none of the values that can win.
        for n in range(batch):
            for oy in range(out_h):
                for ox in range(out_w):
                    for f in range(filters):
                        # (the LeakyReLU on each tap before the maximum: slope * x may round two different
                        # negative values to one, and then the first must win, as in the layers)
                        best = z[n, 2 * oy, 2 * ox, f] + bias[f]
                        if leaky and not best >= zero:
                            best *= negative_slope
                        index = 0
                        value = z[n, 2 * oy, 2 * ox + 1, f] + bias[f]
                        if leaky and not value >= zero:
                            value *= negative_slope
                        if value > best or (value != value and best == best):  # the first maximum (or NaN) wins
                            best, index = value, 1
                        value = z[n, 2 * oy + 1, 2 * ox, f] + bias[f]
                        if leaky and not value >= zero:
                            value *= negative_slope
                        if value > best or (value != value and best == best):
                            best, index = value, 2
                        value = z[n, 2 * oy + 1, 2 * ox + 1, f] + bias[f]
                        if leaky and not value >= zero:
                            value *= negative_slope
                        if value > best or (value != value and best == best):
                            best, index = value, 3
                        if relu and best <= zero:  # (NaN stays NaN, as np.maximum)
                            best, index = zero, 0
                        y[n, oy, ox, f] = best
                        argmax[n, oy, ox, f] = index
        return y
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                first = True
                for ky in range(pool_h):
                    iy = oy * stride_h + ky - pad_top
                    if iy < 0 or iy >= height:
                        continue
                    for kx in range(pool_w):
                        ix = ox * stride_w + kx - pad_left
                        if ix < 0 or ix >= width:
                            continue
                        index = ky * pool_w + kx
                        if first:  # the first tap inside the input starts the maximum
                            for f in range(filters):
                                value = z[n, iy, ix, f] + bias[f]
                                if relu and value <= zero:  # (NaN stays NaN, as np.maximum)
                                    value = zero
                                elif leaky and not value >= zero:
                                    value *= negative_slope
                                y[n, oy, ox, f] = value
                                argmax[n, oy, ox, f] = index
                            first = False
                        else:
                            for f in range(filters):
                                value = z[n, iy, ix, f] + bias[f]
                                if relu and value <= zero:  # (NaN stays NaN, as np.maximum)
                                    value = zero
                                elif leaky and not value >= zero:
                                    value *= negative_slope
                                best = y[n, oy, ox, f]
                                if value > best or (value != value and best == best):  # first max (or NaN) wins
                                    y[n, oy, ox, f] = value
                                    argmax[n, oy, ox, f] = index
    return y


@njit(cache=True, nogil=True, error_model="numpy", twin=conv_epilogue_backward_into_numpy)
def conv_epilogue_backward_into_numba(dy, y, argmax, relu, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                                 dz, dbias, slope=0.0):
    batch, height, width, filters = dz.shape
    _, out_h, out_w, _ = dy.shape
    zero = dy.dtype.type(0)
    leaky = not relu and slope > 0
    negative_slope = dy.dtype.type(slope)
    tiled = (stride_h == pool_h and stride_w == pool_w and pad_top == 0 and pad_left == 0
             and out_h * pool_h <= height and out_w * pool_w <= width)
    if tiled:
        # Windows side by side (the usual 2x2 pool): write every element of dz once, no scatter. The rows and
        # columns no window covers (an odd size under "valid" pooling) get zeros.
        for n in range(batch):
            for iy in range(out_h * pool_h, height):
                for ix in range(width):
                    for f in range(filters):
                        dz[n, iy, ix, f] = zero
            for oy in range(out_h):
                for ky in range(pool_h):
                    for ix in range(out_w * pool_w, width):
                        for f in range(filters):
                            dz[n, oy * pool_h + ky, ix, f] = zero
                for ox in range(out_w):
                    for f in range(filters):
                        gradient = dy[n, oy, ox, f]
                        if relu and not y[n, oy, ox, f] > zero:
                            gradient = zero
                        elif leaky and not y[n, oy, ox, f] >= zero:
                            gradient *= negative_slope
                        dbias[f] += gradient
                    for ky in range(pool_h):
                        for kx in range(pool_w):
                            index = ky * pool_w + kx
                            for f in range(filters):
                                gradient = dy[n, oy, ox, f]
                                if argmax[n, oy, ox, f] != index or (relu and not y[n, oy, ox, f] > zero):
                                    gradient = zero
                                elif leaky and not y[n, oy, ox, f] >= zero:
                                    gradient *= negative_slope
                                dz[n, oy * pool_h + ky, ox * pool_w + kx, f] = gradient
        return dz
    # General windows (overlapping, padded): clear dz, then add each window's gradient at its maximum.
    flat = dz.reshape(-1)
    for i in range(flat.size):
        flat[i] = zero
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                for f in range(filters):
                    gradient = dy[n, oy, ox, f]
                    if relu and not y[n, oy, ox, f] > zero:
                        continue
                    if leaky and not y[n, oy, ox, f] >= zero:
                        gradient *= negative_slope
                    index = argmax[n, oy, ox, f]
                    ky = index // pool_w
                    kx = index - ky * pool_w
                    dz[n, oy * stride_h + ky - pad_top, ox * stride_w + kx - pad_left, f] += gradient
                    dbias[f] += gradient
    return dz


@njit(cache=True, nogil=True, error_model="numpy", twin=bias_relu_forward_in_place_numpy)
def bias_relu_forward_in_place_numba(z, bias, relu):
    batch, features = z.shape
    zero = z.dtype.type(0)
    for n in range(batch):
        for f in range(features):
            value = z[n, f] + bias[f]
            if relu and value <= zero:  # (NaN stays NaN, as np.maximum)
                value = zero
            z[n, f] = value
    return z


@njit(cache=True, nogil=True, error_model="numpy", twin=bias_relu_backward_into_numpy)
def bias_relu_backward_into_numba(dy, y, relu, dz, dbias):
    batch, features = dy.shape
    zero = dy.dtype.type(0)
    for f in range(features):
        dbias[f] = zero
    for n in range(batch):
        for f in range(features):
            gradient = dy[n, f]
            if relu and not y[n, f] > zero:
                gradient = zero
            dz[n, f] = gradient
            dbias[f] += gradient
    return dz


@njit(cache=True, nogil=True, error_model="numpy", twin=bias_leaky_relu_forward_in_place_numpy)
def bias_leaky_relu_forward_in_place_numba(z, bias, slope, positive):
    batch, features = z.shape
    zero = z.dtype.type(0)
    negative_slope = z.dtype.type(slope)
    for n in range(batch):
        for f in range(features):
            value = z[n, f] + bias[f]
            kept = value >= zero
            positive[n, f] = kept
            z[n, f] = value if kept else value * negative_slope
    return z


@njit(cache=True, nogil=True, error_model="numpy", twin=bias_leaky_relu_backward_into_numpy)
def bias_leaky_relu_backward_into_numba(dy, positive, slope, dz, dbias):
    batch, features = dy.shape
    zero = dy.dtype.type(0)
    negative_slope = dy.dtype.type(slope)
    for f in range(features):
        dbias[f] = zero
    for n in range(batch):
        for f in range(features):
            gradient = dy[n, f] if positive[n, f] else dy[n, f] * negative_slope
            dz[n, f] = gradient
            dbias[f] += gradient
    return dz

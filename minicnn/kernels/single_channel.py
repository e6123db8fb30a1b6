"""A 3x3 convolution of a ONE-channel image + bias + ReLU + 2x2 max-pool, in one pass (a grayscale first layer).

The seed CNN's first layer turns a 28x28x1 digit into 26x26x64 numbers, each a sum of only 3*3*1 = 9 products.
The general fast path (im2col + one BLAS product, kernels/im2col.py) spends its time moving memory there: a
column matrix of 9 numbers per output, then a 26x26x64 output array that the pool reads once and throws away.
These kernels compute each pooled output straight from the 4x4 input pixels under its 2x2 pool window::

    p = x[n, 2*oy : 2*oy + 4, 2*ox : 2*ox + 4, 0]                         the 16 pixels the window's 4 outputs see
    z[i, j, f] = sum over (ky, kx) of p[i + ky, j + kx] * kernel[ky, kx, 0, f]     i, j in {0, 1}: the 4 outputs
    y[n, oy, ox, f] = max over (i, j) of relu(z[i, j, f] + bias[f])                (argmax = 2*i + j)

and backward, from dy, the kernel and bias gradients (a first layer needs no input gradient)::

    g[f]            = dy[n, oy, ox, f] if the ReLU passed it (y > 0), else 0;  dbias += g
    dkernel[ky, kx, 0, f] += p[i + ky, j + kx] * g[f]     for the (i, j) the maximum came from (argmax)

Shapes (NHWC)::

    x               (N, H, W, 1)   ALREADY zero-padded as the convolution needs, with H >= 2*OH + 2, W >= 2*OW + 2
    kernel, dkernel (3, 3, 1, F)   dkernel is overwritten
    bias, dbias     (F,)           dbias is ADDED to
    y, dy, argmax   (N, OH, OW, F) the pooled output: OH = conv output rows // 2 (a "valid" 2x2 pool)

The rules are kernels/fused.py's (the first maximum wins ties, the ReLU maps v <= 0 to 0 and keeps NaN), so the
NumPy twins are a convolution followed by fused.py's twins. The Numba kernels keep a window's 16 pixels in
registers and run one loop over the filters per window (vectorised: 8 or 16 filters per instruction).
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.fused import conv_epilogue_backward_into_numpy, conv_epilogue_forward_into_numpy
from minicnn.kernels.jit import njit


# ---------------------------------------------------------------- NumPy twins (read these first)
def _taps(x, out_h, out_w):
    """The 9 pixels each of the 2*out_h x 2*out_w convolution outputs sees, side by side: (N, 2OH, 2OW, 9), in
    the kernel's (ky, kx) order (the im2col of a one-channel image)."""
    return np.stack([x[:, ky:ky + 2 * out_h, kx:kx + 2 * out_w, 0] for ky in range(3) for kx in range(3)], axis=-1)


def single_channel_pool_forward_into_numpy(x, kernel, bias, relu, y, argmax):
    """y[...] = maxpool2x2(relu(conv3x3(x) + bias)), argmax[...] = where each maximum was. Returns y."""
    _, out_h, out_w, filters = y.shape
    z = _taps(x, out_h, out_w) @ kernel.reshape(9, filters)  # (N, 2OH, 2OW, 9) @ (9, F): the convolution
    return conv_epilogue_forward_into_numpy(z, bias, relu, 2, 2, 2, 2, 0, 0, y, argmax)


def single_channel_pool_backward_into_numpy(dy, y, argmax, x, relu, dkernel, dbias):
    """dkernel[...] = the kernel gradient; dbias += the bias gradient. Returns dkernel."""
    _, out_h, out_w, filters = dy.shape
    dz = np.empty((len(x), 2 * out_h, 2 * out_w, filters), dtype=dy.dtype)
    conv_epilogue_backward_into_numpy(dy, y, argmax, relu, 2, 2, 2, 2, 0, 0, dz, dbias)
    dkernel[...] = (_taps(x, out_h, out_w).reshape(-1, 9).T @ dz.reshape(-1, filters)).reshape(dkernel.shape)
    return dkernel


# ---------------------------------------------------------------- Numba kernels (same results, fast)
# fastmath "contract" only lets a multiply and an add become one fused multiply-add (as BLAS does): 36 per
# window and filter here, and nothing else about the arithmetic changes.
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, twin=single_channel_pool_forward_into_numpy)
def single_channel_pool_forward_into_numba(x, kernel, bias, relu, y, argmax):
    batch, out_h, out_w, filters = y.shape
    w = kernel.reshape(9, filters)
    zero = y.dtype.type(0)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                r, c = 2 * oy, 2 * ox
                p00, p01 = x[n, r, c, 0], x[n, r, c + 1, 0]
                p02, p03 = x[n, r, c + 2, 0], x[n, r, c + 3, 0]
                p10, p11 = x[n, r + 1, c, 0], x[n, r + 1, c + 1, 0]
                p12, p13 = x[n, r + 1, c + 2, 0], x[n, r + 1, c + 3, 0]
                p20, p21 = x[n, r + 2, c, 0], x[n, r + 2, c + 1, 0]
                p22, p23 = x[n, r + 2, c + 2, 0], x[n, r + 2, c + 3, 0]
                p30, p31 = x[n, r + 3, c, 0], x[n, r + 3, c + 1, 0]
                p32, p33 = x[n, r + 3, c + 2, 0], x[n, r + 3, c + 3, 0]
                for f in range(filters):
                    w0, w1, w2 = w[0, f], w[1, f], w[2, f]
                    w3, w4, w5 = w[3, f], w[4, f], w[5, f]
                    w6, w7, w8 = w[6, f], w[7, f], w[8, f]
                    best = (p00 * w0 + p01 * w1 + p02 * w2 + p10 * w3 + p11 * w4 + p12 * w5
                            + p20 * w6 + p21 * w7 + p22 * w8) + bias[f]
                    index = 0
                    value = (p01 * w0 + p02 * w1 + p03 * w2 + p11 * w3 + p12 * w4 + p13 * w5
                             + p21 * w6 + p22 * w7 + p23 * w8) + bias[f]
                    if value > best or (value != value and best == best):  # the first maximum (or NaN) wins
                        best, index = value, 1
                    value = (p10 * w0 + p11 * w1 + p12 * w2 + p20 * w3 + p21 * w4 + p22 * w5
                             + p30 * w6 + p31 * w7 + p32 * w8) + bias[f]
                    if value > best or (value != value and best == best):
                        best, index = value, 2
                    value = (p11 * w0 + p12 * w1 + p13 * w2 + p21 * w3 + p22 * w4 + p23 * w5
                             + p31 * w6 + p32 * w7 + p33 * w8) + bias[f]
                    if value > best or (value != value and best == best):
                        best, index = value, 3
                    if relu and best <= zero:  # the maximum <= 0: all four are 0 after the ReLU, the first wins
                        best, index = zero, 0   # (NaN stays NaN)
                    y[n, oy, ox, f] = best
                    argmax[n, oy, ox, f] = index
    return y


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, twin=single_channel_pool_backward_into_numpy)
def single_channel_pool_backward_into_numba(dy, y, argmax, x, relu, dkernel, dbias):
    batch, out_h, out_w, filters = dy.shape
    dw = dkernel.reshape(9, filters)
    zero = dy.dtype.type(0)
    for t in range(9):
        for f in range(filters):
            dw[t, f] = zero
    # a window's gradient, split by where its maximum was (0 at the other three outputs)
    g0, g1 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    g2, g3 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                for f in range(filters):
                    gradient = dy[n, oy, ox, f]
                    if relu and not y[n, oy, ox, f] > zero:
                        gradient = zero
                    dbias[f] += gradient
                    index = argmax[n, oy, ox, f]
                    g0[f] = gradient if index == 0 else zero
                    g1[f] = gradient if index == 1 else zero
                    g2[f] = gradient if index == 2 else zero
                    g3[f] = gradient if index == 3 else zero
                r, c = 2 * oy, 2 * ox
                for ky in range(3):
                    for kx in range(3):  # the tap (ky, kx) saw these pixels at the window's four outputs
                        a, b = x[n, r + ky, c + kx, 0], x[n, r + ky, c + kx + 1, 0]
                        d, e = x[n, r + ky + 1, c + kx, 0], x[n, r + ky + 1, c + kx + 1, 0]
                        row = dw[3 * ky + kx]
                        for f in range(filters):
                            row[f] += a * g0[f] + b * g1[f] + d * g2[f] + e * g3[f]
    return dkernel


# ---------------------------------------------------------------- any K x K kernel (LeNet-5's 5x5 first layer)
# The same computation for a K x K kernel, K from the kernel's shape: each pooled output from the (K+1) x (K+1)
# pixels under its window. Few filters (LeNet-5: 6) leave the filter loop above too short to vectorise, so these
# kernels run along an image ROW instead: for one filter and one pair of output rows, each tap adds w * a row of
# pixels to two rows of outputs (2 * OW values, contiguous in a one-channel image), then the pool reads them.
#
#     x               (N, H, W, 1)   ALREADY zero-padded, H >= 2*OH + K - 1, W >= 2*OW + K - 1
#     kernel, dkernel (K, K, 1, F)   dkernel is overwritten
#
# The Numba kernels compute W - K + 1 outputs per row (the pool reads the first 2*OW): a caller that pads W so
# that this is a multiple of 8 or 16 keeps the row loops free of a scalar remainder (conv_single_channel_rows.py).
def _taps_kxk(x, size, out_h, out_w):
    """(N, 2OH, 2OW, K*K): the K*K pixels each convolution output sees, in the kernel's (ky, kx) order."""
    return np.stack([x[:, ky:ky + 2 * out_h, kx:kx + 2 * out_w, 0] for ky in range(size) for kx in range(size)],
                    axis=-1)


def single_channel_kxk_pool_forward_into_numpy(x, kernel, bias, relu, y, argmax):
    """y[...] = maxpool2x2(relu(convKxK(x) + bias)), argmax[...] = where each maximum was. Returns y."""
    _, out_h, out_w, filters = y.shape
    size = kernel.shape[0]
    z = _taps_kxk(x, size, out_h, out_w) @ kernel.reshape(size * size, filters)
    return conv_epilogue_forward_into_numpy(z, bias, relu, 2, 2, 2, 2, 0, 0, y, argmax)


def single_channel_kxk_pool_backward_into_numpy(dy, y, argmax, x, relu, dkernel, dbias):
    """dkernel[...] = the kernel gradient; dbias += the bias gradient. Returns dkernel."""
    _, out_h, out_w, filters = dy.shape
    size = dkernel.shape[0]
    dz = np.empty((len(x), 2 * out_h, 2 * out_w, filters), dtype=dy.dtype)
    conv_epilogue_backward_into_numpy(dy, y, argmax, relu, 2, 2, 2, 2, 0, 0, dz, dbias)
    taps = _taps_kxk(x, size, out_h, out_w).reshape(-1, size * size)
    dkernel[...] = (taps.T @ dz.reshape(-1, filters)).reshape(dkernel.shape)
    return dkernel


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"},
      twin=single_channel_kxk_pool_forward_into_numpy)
def single_channel_kxk_pool_forward_into_numba(x, kernel, bias, relu, y, argmax):
    batch, out_h, out_w, filters = y.shape
    size = kernel.shape[0]
    width = x.shape[2] - size + 1  # outputs per row computed (>= 2 * out_w, see above)
    zero = y.dtype.type(0)
    pixels = x.reshape(x.shape[0], x.shape[1], x.shape[2])  # (C-contiguous rows: the row loops vectorise)
    top = np.empty(width, dtype=y.dtype)     # the pool window's upper output row, then its lower one
    bottom = np.empty(width, dtype=y.dtype)
    for n in range(batch):
        for f in range(filters):
            for oy in range(out_h):
                r = 2 * oy
                for c in range(width):
                    top[c] = zero
                    bottom[c] = zero
                for ky in range(size):
                    upper, lower = pixels[n, r + ky], pixels[n, r + ky + 1]
                    for kx in range(size):
                        weight = kernel[ky, kx, 0, f]
                        for c in range(width):
                            top[c] += upper[c + kx] * weight
                            bottom[c] += lower[c + kx] * weight
                for ox in range(out_w):
                    best, index = top[2 * ox] + bias[f], 0
                    value = top[2 * ox + 1] + bias[f]
                    if value > best:  # strict: the first maximum wins ties
                        best, index = value, 1
                    value = bottom[2 * ox] + bias[f]
                    if value > best:
                        best, index = value, 2
                    value = bottom[2 * ox + 1] + bias[f]
                    if value > best:
                        best, index = value, 3
                    if relu and best <= zero:  # all four are 0 after the ReLU: the first wins (NaN stays NaN)
                        best, index = zero, 0
                    y[n, oy, ox, f] = best
                    argmax[n, oy, ox, f] = index
    return y


@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"},
      twin=single_channel_kxk_pool_backward_into_numpy)
def single_channel_kxk_pool_backward_into_numba(dy, y, argmax, x, relu, dkernel, dbias):
    batch, out_h, out_w, filters = dy.shape
    size = dkernel.shape[0]
    width = x.shape[2] - size + 1  # (the columns past 2 * out_w get a zero gradient)
    zero = dy.dtype.type(0)
    # per tap and filter, one partial sum per output column (summed at the end): the row loops vectorise
    partial = np.zeros((size * size, filters, width), dtype=dy.dtype)
    pixels = x.reshape(x.shape[0], x.shape[1], x.shape[2])
    top = np.zeros(width, dtype=dy.dtype)  # the gradient at the window's upper outputs, then its lower ones
    bottom = np.zeros(width, dtype=dy.dtype)
    for n in range(batch):
        for f in range(filters):
            for oy in range(out_h):
                for ox in range(out_w):
                    gradient = dy[n, oy, ox, f]
                    if relu and not y[n, oy, ox, f] > zero:
                        gradient = zero
                    dbias[f] += gradient
                    index = argmax[n, oy, ox, f]
                    top[2 * ox] = gradient if index == 0 else zero
                    top[2 * ox + 1] = gradient if index == 1 else zero
                    bottom[2 * ox] = gradient if index == 2 else zero
                    bottom[2 * ox + 1] = gradient if index == 3 else zero
                r = 2 * oy
                for ky in range(size):
                    upper, lower = pixels[n, r + ky], pixels[n, r + ky + 1]
                    for kx in range(size):
                        row = partial[ky * size + kx, f]
                        for c in range(width):
                            row[c] += upper[c + kx] * top[c] + lower[c + kx] * bottom[c]
    for ky in range(size):
        for kx in range(size):
            for f in range(filters):
                total = zero
                for c in range(width):
                    total += partial[ky * size + kx, f, c]
                dkernel[ky, kx, 0, f] = total
    return dkernel

"""Kernels for predictions on a few images (one image: a latency): Dense + activation and Softmax without BLAS.

For one image a Dense layer is a vector times a matrix. OpenBLAS computes it fast, but around it the fast engine
pays for holding BLAS to one thread (its threads would wake for a 784 x 256 product), and the bias, the activation
and the final Softmax each cost a call. These kernels do a whole Dense [+ ReLU / LeakyReLU] in one pass over the
weights, and the Softmax in one pass over the row (minicnn/fast/small_batch.py runs them):

``dense_activation_forward_into``  y[...] = activation(x @ kernel + bias)     x (N, D_in), kernel (D_in, D_out)
``softmax_forward_into``           y[...] = softmax(x) along each row         x, y (N, K)
``dense_tail_forward_into``        the two above for a chain of Dense layers, in ONE call (one dispatch, not one
                                   per layer): every kernel and bias is a piece of ONE flat parameter buffer (the
                                   model's ``flat_params``) and every output a piece of one scratch buffer, placed by
                                   a table of whole numbers (``layout``): Numba checks the types of a call's
                                   arguments at every call, and tuples of arrays cost it 11 us a call, 5 arrays 2 us

``activation``: 0 none, 1 ReLU (relu(v) = 0 if v <= 0 else v: NaN stays NaN), 2 LeakyReLU (v if v >= 0 else
slope * v), the rules of minicnn/layers/relu.py and leaky_relu.py. The NumPy twins are the layers' own functions.
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit
from minicnn.layers.dense import dense_forward
from minicnn.layers.leaky_relu import leaky_relu_forward
from minicnn.layers.relu import relu_forward
from minicnn.layers.softmax import softmax_forward

NO_ACTIVATION, RELU, LEAKY_RELU = 0, 1, 2


# ---------------------------------------------------------------- NumPy twins (read these first)
def dense_activation_forward_into_numpy(x, kernel, bias, activation, slope, y):
    """y[...] = activation(x @ kernel + bias), the layers' own functions one after another. Returns y."""
    z, _ = dense_forward(x, kernel, bias)
    if activation == RELU:
        z, _ = relu_forward(z)
    elif activation == LEAKY_RELU:
        z, _ = leaky_relu_forward(z, slope)
    y[...] = z
    return y


def softmax_forward_into_numpy(x, y):
    """y[...] = softmax(x) along each row (the layer's function). Returns y."""
    y[...] = softmax_forward(x)[0]
    return y


# ---------------------------------------------------------------- Numba kernels (same results, fast)
@njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"}, twin=dense_activation_forward_into_numpy)
def dense_activation_forward_into_numba(x, kernel, bias, activation, slope, y):
    batch, depth = x.shape
    units = kernel.shape[1]
    zero = y.dtype.type(0)
    negative_slope = y.dtype.type(slope)
    for n in range(batch):
        for f in range(units):
            y[n, f] = zero
    # Each row of the kernel is read once, for every image (it is the large operand), eight rows at a time so that
    # y is loaded and stored once per eight multiply-adds (one row at a time: 1.5x slower for one image).
    main = depth - depth % 8
    for k in range(0, main, 8):
        for n in range(batch):
            x0, x1, x2, x3 = x[n, k], x[n, k + 1], x[n, k + 2], x[n, k + 3]
            x4, x5, x6, x7 = x[n, k + 4], x[n, k + 5], x[n, k + 6], x[n, k + 7]
            for f in range(units):
                y[n, f] += ((x0 * kernel[k, f] + x1 * kernel[k + 1, f] + x2 * kernel[k + 2, f] + x3 * kernel[k + 3, f])
                            + (x4 * kernel[k + 4, f] + x5 * kernel[k + 5, f] + x6 * kernel[k + 6, f]
                               + x7 * kernel[k + 7, f]))
    for k in range(main, depth):
        for n in range(batch):
            value = x[n, k]
            for f in range(units):
                y[n, f] += value * kernel[k, f]
    for n in range(batch):
        for f in range(units):
            value = y[n, f] + bias[f]
            if activation == 1:
                if value <= zero:  # (NaN stays NaN, as np.maximum)
                    value = zero
            elif activation == 2:
                if not value >= zero:
                    value = value * negative_slope
            y[n, f] = value
    return y


@njit(cache=True, nogil=True, error_model="numpy", twin=softmax_forward_into_numpy)
def softmax_forward_into_numba(x, y):
    batch, classes = x.shape
    for n in range(batch):
        largest = x[n, 0]
        for k in range(1, classes):
            if x[n, k] > largest:
                largest = x[n, k]
        total = y.dtype.type(0)
        for k in range(classes):
            y[n, k] = np.exp(x[n, k] - largest)
            total += y[n, k]
        for k in range(classes):
            y[n, k] = y[n, k] / total
    return y


# layout: one row per Dense layer, these columns (offsets and sizes count elements of the buffers)
KERNEL_AT, INPUTS, UNITS, BIAS_AT, ACTIVATION, OUTPUT_AT = range(6)


def dense_tail_forward_into_numpy(x, parameters, layout, slopes, scratch, softmax, probabilities):
    """Dense [+ activation] layer after layer: layer i's kernel is ``parameters[KERNEL_AT:...]`` shaped (INPUTS,
    UNITS), its bias ``parameters[BIAS_AT:...]``, its output ``scratch[OUTPUT_AT:...]`` shaped (N, UNITS)
    (``layout[i]``), its LeakyReLU slope ``slopes[i]``; then a Softmax into ``probabilities`` if ``softmax``.
    Returns the last array written."""
    images = x.shape[0]
    for row, slope in zip(layout, slopes):
        kernel = parameters[row[KERNEL_AT]:row[KERNEL_AT] + row[INPUTS] * row[UNITS]].reshape(row[INPUTS], row[UNITS])
        bias = parameters[row[BIAS_AT]:row[BIAS_AT] + row[UNITS]]
        output = scratch[row[OUTPUT_AT]:row[OUTPUT_AT] + images * row[UNITS]].reshape(images, row[UNITS])
        x = dense_activation_forward_into_numpy(x, kernel, bias, row[ACTIVATION], slope, output)
    return softmax_forward_into_numpy(x, probabilities) if softmax else x


@njit(cache=True, nogil=True, error_model="numpy", twin=dense_tail_forward_into_numpy)
def dense_tail_forward_into_numba(x, parameters, layout, slopes, scratch, softmax, probabilities):
    images = x.shape[0]
    for number in range(layout.shape[0]):
        at, inputs, units = layout[number, KERNEL_AT], layout[number, INPUTS], layout[number, UNITS]
        kernel = parameters[at:at + inputs * units].reshape((inputs, units))
        bias = parameters[layout[number, BIAS_AT]:layout[number, BIAS_AT] + units]
        output = scratch[layout[number, OUTPUT_AT]:layout[number, OUTPUT_AT] + images * units].reshape((images, units))
        x = dense_activation_forward_into_numba(x, kernel, bias, layout[number, ACTIVATION], slopes[number], output)
    if softmax:
        return softmax_forward_into_numba(x, probabilities)
    return x

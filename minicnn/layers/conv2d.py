"""Conv2D: a 2-D convolution (strictly, a cross-correlation, as in every framework) over NHWC images.

Shapes::

    x       (N, H, W, C)          images, channels last
    kernel  (KH, KW, C, F)        F filters of size KH x KW x C (Keras's layout)
    bias    (F,)
    y       (N, OH, OW, F)

Math, for output pixel (n, oy, ox) and filter f, on the zero-padded input xp::

    y[n, oy, ox, f] = bias[f] + sum_{ky, kx, c} xp[n, oy*SH + ky, ox*SW + kx, c] * kernel[ky, kx, c, f]

Padding "valid": none, OH = (H - KH) // SH + 1. Padding "same": OH = ceil(H / SH), the zeros needed for that
split between top and bottom with the extra row (if odd) at the bottom (as Keras and TensorFlow).

How it is computed here: ``im2col`` copies every KH x KW x C window into a row of a matrix ``columns``
(N*OH*OW, KH*KW*C), in the (ky, kx, c) order of the kernel; then the whole convolution is one matrix product
with the kernel seen as a (KH*KW*C, F) matrix. (The fast engine computes the same numbers other ways:
minicnn/fast/.)

Backward, with dy = dLoss/dy of shape (N, OH, OW, F) seen as a matrix dY (N*OH*OW, F)::

    dbias    = sum of dy over n, oy, ox                        (F,)
    dkernel  = columns.T @ dY                                  (KH*KW*C, F) -> (KH, KW, C, F)
    dcolumns = dY @ kernel_matrix.T                            (N*OH*OW, KH*KW*C)
    dx       = col2im(dcolumns), with the padding cut off      (N, H, W, C)
"""
from __future__ import annotations

import numpy as np

from minicnn import regularizers
from minicnn.errors import ShapeError
from minicnn.initializers import initialize
from minicnn.layers.base import Layer, Parameter, pair, regularizer_config, window_output_size
from minicnn.layers.maxpool2d import window_slices


def im2col(x, kernel_size, strides, out_h, out_w):
    """x (N, H, W, C), already padded -> columns (N*OH*OW, KH*KW*C): row (n, oy, ox) is the window under output
    (oy, ox), flattened in (ky, kx, c) order. One strided slice per kernel tap (ky, kx): it picks, for every
    output position, the input pixel that tap looks at."""
    # BEGIN SOLUTION task=conv2d.im2col
    batch, _, _, channels = x.shape
    kernel_h, kernel_w = kernel_size
    columns = np.empty((batch, out_h, out_w, kernel_h, kernel_w, channels), dtype=x.dtype)
    for ky in range(kernel_h):
        for kx in range(kernel_w):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            columns[:, :, :, ky, kx, :] = x[:, rows, cols, :]
    return columns.reshape(batch * out_h * out_w, kernel_h * kernel_w * channels)
    # END SOLUTION


def col2im_add_into(columns, dx, kernel_size, strides, out_h, out_w):
    """The adjoint of im2col: ADD every row of columns (N*OH*OW, KH*KW*C) back onto the window it came from in
    dx (N, H, W, C), in place (a pixel under several windows receives the sum). Returns dx."""
    # BEGIN SOLUTION task=conv2d.col2im
    batch, _, _, channels = dx.shape
    kernel_h, kernel_w = kernel_size
    columns = columns.reshape(batch, out_h, out_w, kernel_h, kernel_w, channels)
    for ky in range(kernel_h):
        for kx in range(kernel_w):
            rows, cols = window_slices(ky, kx, strides, out_h, out_w)
            dx[:, rows, cols, :] += columns[:, :, :, ky, kx, :]
    return dx
    # END SOLUTION


def conv2d_forward(x, kernel, bias, strides, padding):
    """x (N, H, W, C), kernel (KH, KW, C, F), bias (F,) -> y (N, OH, OW, F), cache for the backward pass."""
    # BEGIN SOLUTION task=conv2d.forward
    batch, height, width, channels = x.shape
    kernel_h, kernel_w, _, filters = kernel.shape
    out_h, pad_h = window_output_size(height, kernel_h, strides[0], padding)
    out_w, pad_w = window_output_size(width, kernel_w, strides[1], padding)
    x_padded = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0))) if padding == "same" else x
    columns = im2col(x_padded, (kernel_h, kernel_w), strides, out_h, out_w)      # (N*OH*OW, KH*KW*C)
    kernel_matrix = kernel.reshape(kernel_h * kernel_w * channels, filters)      # (KH*KW*C, F)
    y = (columns @ kernel_matrix + bias).reshape(batch, out_h, out_w, filters)
    cache = (x_padded, columns, kernel, strides, pad_h, pad_w)
    return y, cache
    # END SOLUTION


def conv2d_backward(dy, cache, need_input_grad=True):
    """dy (N, OH, OW, F) -> dx (N, H, W, C) or None, dkernel (KH, KW, C, F), dbias (F,)."""
    x_padded, columns, kernel, strides, pad_h, pad_w = cache
    # BEGIN SOLUTION task=conv2d.backward
    kernel_h, kernel_w, channels, filters = kernel.shape
    _, out_h, out_w, _ = dy.shape
    dy_matrix = dy.reshape(-1, filters)                                          # (N*OH*OW, F)

    dbias = dy_matrix.sum(axis=0)
    dkernel = (columns.T @ dy_matrix).reshape(kernel.shape)
    if not need_input_grad:
        return None, dkernel, dbias
    dcolumns = dy_matrix @ kernel.reshape(kernel_h * kernel_w * channels, filters).T
    dx_padded = col2im_add_into(dcolumns, np.zeros_like(x_padded), (kernel_h, kernel_w), strides, out_h, out_w)
    height = x_padded.shape[1] - pad_h[0] - pad_h[1]
    width = x_padded.shape[2] - pad_w[0] - pad_w[1]
    dx = dx_padded[:, pad_h[0]:pad_h[0] + height, pad_w[0]:pad_w[0] + width, :]
    return dx, dkernel, dbias
    # END SOLUTION


class Conv2D(Layer):
    """``Conv2D(filters, kernel_size, strides=1, padding="valid")``, as ``keras.layers.Conv2D``.

    ``activation="relu"`` (or ``"leaky_relu"``) is accepted for Keras habits: the model then puts a ReLU (or
    LeakyReLU(0.2)) layer right after this one.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, input_shape=None, name=None):
        super().__init__(name)
        if int(filters) < 1:
            raise ValueError(f"Conv2D needs at least one filter, got filters={filters!r}")
        self.filters = int(filters)
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.padding = padding.lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Conv2D padding must be 'valid' or 'same', got {padding!r}")
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "Conv2D kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "Conv2D bias_regularizer")
        self.requested_input_shape = tuple(input_shape) if input_shape is not None else None
        self.kernel = None
        self.bias = None

    def parameters(self):
        return [self.kernel, self.bias]

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ShapeError(
                f"{self.name or 'Conv2D'} expects images of shape (height, width, channels), got {input_shape}. "
                "Give grayscale images a channel axis: x[..., None] (shape (N, 28, 28, 1)).")
        height, width, _ = input_shape
        out_h, _ = window_output_size(height, self.kernel_size[0], self.strides[0], self.padding)
        out_w, _ = window_output_size(width, self.kernel_size[1], self.strides[1], self.padding)
        if out_h < 1 or out_w < 1:
            raise ShapeError(
                f"{self.name or 'Conv2D'}: a {self.kernel_size} kernel with padding='valid' does not fit in an "
                f"input of {height}x{width}. Use padding='same', a smaller kernel, or fewer pooling layers before it.")
        return (out_h, out_w, self.filters)

    def build(self, input_shape, dtype, rng):
        output_shape = super().build(input_shape, dtype, rng)
        kernel_shape = (*self.kernel_size, input_shape[2], self.filters)
        self.kernel = Parameter.create("kernel", initialize(self.kernel_initializer, kernel_shape, self.dtype, rng))
        self.bias = Parameter.create("bias", initialize(self.bias_initializer, (self.filters,), self.dtype, rng))
        self.kernel.regularizer, self.bias.regularizer = self.kernel_regularizer, self.bias_regularizer
        return output_shape

    def forward(self, x, training=False):
        return conv2d_forward(x, self.kernel.value, self.bias.value, self.strides, self.padding)

    def backward(self, dy, cache, grads, need_input_grad=True):
        dx, dkernel, dbias = conv2d_backward(dy, cache, need_input_grad)
        grads[0][...] = dkernel
        grads[1][...] = dbias
        return dx

    def get_config(self):
        return {"name": self.name, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "kernel_initializer": self.kernel_initializer, "bias_initializer": self.bias_initializer,
                **regularizer_config(self)}

"""Conv2D K x K (any K: LeNet-5's 5x5), stride 1, over ONE input channel + ReLU + 2x2 MaxPool2D, row by row.

The 3x3 kernel of conv_single_channel.py vectorises over the filters, which a first layer with few filters
(LeNet-5: 6) leaves mostly idle, and im2col + BLAS multiplies a thin (N*H*W, 25) x (25, 6) product. These kernels
(minicnn/kernels/single_channel.py, ``single_channel_kxk_pool_*``) run along image rows instead: for one filter,
each tap adds weight x a row of pixels to a pair of output rows, then the pool reads the pair. Backward gives the
kernel and bias gradients (a first layer needs no input gradient; if one is asked for, the im2col way).
"""
from __future__ import annotations

from minicnn.fast import conv_im2col, conv_single_channel

ROW_MULTIPLE = 16  # outputs computed per row: rounded up to this (the row loops then have no scalar remainder)


def _source(x, geometry, workspace):
    """x zero-padded as the convolution needs, and on the right so that each row gives a multiple of
    ROW_MULTIPLE outputs (the pool reads the first 2 * pooled_w)."""
    g = geometry
    rows = 2 * g.pooled_h + g.kernel_h - 1
    cols = -(-2 * g.pooled_w // ROW_MULTIPLE) * ROW_MULTIPLE + g.kernel_w - 1
    return conv_single_channel.zero_padded(x, geometry, workspace, "padded-rows", rows, cols)


def forward(x, kernel, bias, geometry, kernels, workspace, y, argmax, training):
    """x (N, H, W, 1) -> y, argmax written; returns the (padded) source for backward."""
    source = _source(x, geometry, workspace)
    kernels.single_channel_kxk_pool_forward_into(source, kernel, bias, geometry.epilogue.relu, y, argmax)
    return source


def backward(dy, x, y, argmax, source, kernel, geometry, kernels, workspace, dbias, dx):
    """dbias += the bias gradient; returns dkernel (K, K, 1, F). dx, if asked for, comes the im2col way."""
    if dx is not None:
        return conv_im2col.backward(dy, x, y, argmax, None, kernel, geometry, kernels, workspace, dbias, dx)
    dkernel = workspace.get((geometry, "dkernel"), kernel.shape, x.dtype)
    return kernels.single_channel_kxk_pool_backward_into(dy, y, argmax, source, geometry.epilogue.relu, dkernel,
                                                         dbias)

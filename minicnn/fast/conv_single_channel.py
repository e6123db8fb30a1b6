"""Conv2D 3x3, stride 1, over ONE input channel + ReLU + 2x2 MaxPool2D: one kernel from pixels to pooled outputs.

A grayscale first layer computes 9 products per output: nothing for BLAS to do, and im2col would only move
memory. ``kernels.single_channel_pool_forward_into`` computes each pooled output from the 16 pixels under its
pool window (minicnn/kernels/single_channel.py); backward gives the kernel and bias gradients. A first layer
needs no input gradient; if one is asked for, the backward pass goes the im2col way.
"""
from __future__ import annotations

from minicnn.fast import conv_im2col


def _source(x, geometry, workspace):
    """x, zero-padded as the convolution needs if it needs it (the kernel reads no bounds)."""
    g = geometry
    rows, cols = 2 * g.pooled_h + g.kernel_h - 1, 2 * g.pooled_w + g.kernel_w - 1
    if g.pad_top == 0 and g.pad_left == 0 and x.shape[1] >= rows and x.shape[2] >= cols:
        return x
    return zero_padded(x, geometry, workspace, "padded", rows, cols)


def zero_padded(x, geometry, workspace, name, rows, cols):
    """x copied into a zeroed (N, rows, cols, 1) workspace array at the convolution's top/left padding (what
    does not fit is cut: those rows and columns feed no pooled output)."""
    g = geometry
    padded = workspace.get((geometry, name), (len(x), rows, cols, 1), x.dtype)
    padded[...] = 0
    height, width = min(x.shape[1], rows - g.pad_top), min(x.shape[2], cols - g.pad_left)
    padded[:, g.pad_top:g.pad_top + height, g.pad_left:g.pad_left + width] = x[:, :height, :width]
    return padded


def forward(x, kernel, bias, geometry, kernels, workspace, y, argmax, training):
    """x (N, H, W, 1) -> y, argmax written; returns the (padded) source for backward."""
    source = _source(x, geometry, workspace)
    kernels.single_channel_pool_forward_into(source, kernel, bias, geometry.epilogue.relu, y, argmax)
    return source


def backward(dy, x, y, argmax, source, kernel, geometry, kernels, workspace, dbias, dx):
    """dbias += the bias gradient; returns dkernel (3, 3, 1, F). dx, if asked for, comes the im2col way."""
    if dx is not None:
        return conv_im2col.backward(dy, x, y, argmax, None, kernel, geometry, kernels, workspace, dbias, dx)
    dkernel = workspace.get((geometry, "dkernel"), kernel.shape, x.dtype)
    return kernels.single_channel_pool_backward_into(dy, y, argmax, source, geometry.epilogue.relu, dkernel, dbias)

"""Conv2D [+ ReLU] [+ MaxPool2D] by im2col and one matrix product, a chunk of images at a time.

The general algorithm of the fast engine (any kernel size, stride and padding)::

    forward, per chunk:   columns = im2col(x)                         kernels.im2col_into (padding built in)
                          z       = columns @ kernel_matrix            BLAS
                          y, argmax = maxpool(relu(z + bias))          kernels.conv_epilogue_forward_into
                                      (or leaky_relu(z + bias, geometry.slope))
    backward, per chunk:  dz      = dy routed back through pool and ReLU; dbias += its sum
                          dkernel += columns.T @ dz                    (columns recomputed, unless kept)
                          dx      = col2im(dz @ kernel_matrix.T)       skipped for a first layer

A chunk is a few images, so that columns and z stay in the CPU cache (``geometry.chunk``); the full-size
convolution output is never built. It is the same arithmetic as minicnn/layers/conv2d.py followed by
relu.py and maxpool2d.py (tests/test_fast_engine.py checks it against exactly that composition).
"""
from __future__ import annotations

import numpy as np

from minicnn.fast.parallel import split

KEEP_COLUMNS_BYTES = 4 * 2 ** 20  # training keeps a batch's columns for backward when they fit in this


def chunks(batch, images_per_chunk):
    """[(start, stop)] covering range(batch) in nearly equal chunks of at most ``images_per_chunk`` images."""
    return split(batch, max(1, -(-batch // images_per_chunk)), minimum=1)


def _im2col(x, columns, geometry, kernels):
    g = geometry
    kernels.im2col_into(x, columns, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                        g.out_h, g.out_w)


def forward(x, kernel, bias, geometry, kernels, workspace, y, argmax, training, statistics=None):
    """x (N, H, W, C) -> y, argmax (N, OH', OW', F) written; returns the columns kept for backward (or None).
    ``statistics`` (center, sums): a BatchNormalization's sums of y added chunk by chunk (kernels/batch_norm.py)."""
    g, batch, dtype = geometry, len(x), x.dtype
    per_image = g.out_h * g.out_w
    kernel_matrix = kernel.reshape(g.depth, g.filters)
    # A thin column matrix (few input channels, e.g. a first layer) is cheaper to keep for the backward pass
    # than to build twice; a wide one (36 MB for the seed CNN's second layer at batch 128) is not.
    kept = None
    if training and batch * per_image * g.depth * x.itemsize <= KEEP_COLUMNS_BYTES:
        kept = workspace.get((geometry, "columns"), (batch * per_image, g.depth), dtype)
    for start, stop in chunks(batch, g.chunk):
        rows = (stop - start) * per_image
        if kept is not None:
            columns = kept[start * per_image:stop * per_image]
        else:
            columns = workspace.get("columns", (rows, g.depth), dtype)
        _im2col(x[start:stop], columns, g, kernels)
        z = workspace.get("z", (rows, g.filters), dtype)
        np.matmul(columns, kernel_matrix, out=z)
        kernels.conv_epilogue_forward_into(z.reshape(stop - start, g.out_h, g.out_w, g.filters), bias,
                                           *g.epilogue, y[start:stop], argmax[start:stop], g.slope)
        if statistics is not None:
            kernels.batch_norm_sums_into(y[start:stop].reshape(-1, g.filters), *statistics)
    return kept


def backward(dy, x, y, argmax, kept, kernel, geometry, kernels, workspace, dbias, dx):
    """dbias += the bias gradient, dx (if not None) = the input gradient; returns dkernel (KH*KW*C, F)."""
    g, dtype = geometry, x.dtype
    per_image = g.out_h * g.out_w
    kernel_matrix = kernel.reshape(g.depth, g.filters)
    dkernel = workspace.get((geometry, "dkernel"), kernel_matrix.shape, dtype)
    partial = workspace.get("dkernel", kernel_matrix.shape, dtype)
    for number, (start, stop) in enumerate(chunks(len(x), g.chunk)):
        rows = (stop - start) * per_image
        dz = workspace.get("dz", (stop - start, g.out_h, g.out_w, g.filters), dtype)
        kernels.conv_epilogue_backward_into(dy[start:stop], y[start:stop], argmax[start:stop], *g.epilogue,
                                            dz, dbias, g.slope)
        dz = dz.reshape(rows, g.filters)
        if kept is not None:
            columns = kept[start * per_image:stop * per_image]
        else:  # recompute them
            columns = workspace.get("columns", (rows, g.depth), dtype)
            _im2col(x[start:stop], columns, g, kernels)
        np.matmul(columns.T, dz, out=dkernel if number == 0 else partial)
        if number > 0:
            dkernel += partial
        if dx is not None:
            dcolumns = columns if kept is None else workspace.get("columns", (rows, g.depth), dtype)
            np.matmul(dz, kernel_matrix.T, out=dcolumns)  # (recomputed columns are used up: their buffer is reused)
            kernels.col2im_into(dcolumns, dx[start:stop], g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
                                g.pad_top, g.pad_left, g.out_h, g.out_w)
    return dkernel

"""Conv2D 3x3, stride 1 [+ ReLU] [+ MaxPool2D] by Winograd's F(2x2, 3x3): 2.25x fewer multiplications.

minicnn/kernels/winograd.py explains the transforms. Per chunk of images::

    forward:   V = B^T d B per 4x4 input tile              kernels.input_transform_into       (16, P, C)
               M[k] = V[k] @ U[k], k = 0..15               16 matrix products (BLAS)         (16, P, F)
               y, argmax = pool(relu(A^T M A + bias))      kernels.output_transform_pool_into (tiles = pool windows)
                   or  z = A^T M A, then the epilogue      kernels.output_transform_into + conv_epilogue_forward_into
    backward:  dM = the adjoint of the above; dU[k] += V[k]^T @ dM[k]; dx = adjoint of the input transform

U = G g G^T is the kernel transformed once per call (``kernels.kernel_transform_into``); dkernel = G^T dU G.
"""
from __future__ import annotations

import numpy as np

from minicnn.fast.conv_im2col import chunks
from minicnn.kernels import winograd


def _tile_buffer(workspace, name, images, width, geometry, dtype):
    """A (16, P', width) buffer for the tiles of ``images`` images; P' >= P rows, odd, so that the 16 row blocks
    are not a multiple of 4 KB apart (they would evict each other from the cache). Returns (buffer, P)."""
    tiles = images * geometry.tiles_h * geometry.tiles_w
    padded = tiles if tiles % 2 else tiles + 1
    return workspace.get(name, (16, padded, width), dtype), tiles


def forward(x, kernel, bias, geometry, kernels, workspace, y, argmax, training, statistics=None):
    """x (N, H, W, C) -> y, argmax written; returns U, the transformed kernel (16, C, F), for backward.
    ``statistics`` (center, sums): a BatchNormalization's sums of y added chunk by chunk (kernels/batch_norm.py)."""
    g, dtype, channels = geometry, x.dtype, x.shape[3]
    U = kernels.kernel_transform_into(kernel, np.empty((16, channels, g.filters), dtype=dtype))
    for start, stop in chunks(len(x), g.winograd_chunk):
        V, tiles = _tile_buffer(workspace, "V", stop - start, channels, g, dtype)
        kernels.input_transform_into(x[start:stop], g.pad_top, g.pad_left, g.tiles_h, g.tiles_w, V)
        M, _ = _tile_buffer(workspace, "M", stop - start, g.filters, g, dtype)
        np.matmul(V[:, :tiles], U, out=M[:, :tiles])
        if g.pool_is_tiles:
            kernels.output_transform_pool_into(M, g.tiles_h, g.tiles_w, bias, g.epilogue.relu, y[start:stop],
                                               argmax[start:stop])
        else:
            z = workspace.get("z", (stop - start, g.out_h, g.out_w, g.filters), dtype)
            kernels.output_transform_into(M, g.tiles_h, g.tiles_w, z)
            kernels.conv_epilogue_forward_into(z, bias, *g.epilogue, y[start:stop], argmax[start:stop], g.slope)
        if statistics is not None:
            kernels.batch_norm_sums_into(y[start:stop].reshape(-1, g.filters), *statistics)
    return U


def backward(dy, x, y, argmax, U, kernel, geometry, kernels, workspace, dbias, dx):
    """dbias += the bias gradient, dx (if not None) = the input gradient; returns dkernel (3, 3, C, F)."""
    g, dtype, channels = geometry, x.dtype, x.shape[3]
    dU = np.zeros((16, channels, g.filters), dtype=dtype)
    partial = workspace.get("dU", dU.shape, dtype)
    U_transposed = np.ascontiguousarray(U.transpose(0, 2, 1))  # faster in matmul than a transposed view
    for start, stop in chunks(len(x), g.winograd_chunk):
        dM, tiles = _tile_buffer(workspace, "M", stop - start, g.filters, g, dtype)
        if g.pool_is_tiles:
            kernels.output_transform_pool_backward_into(dy[start:stop], y[start:stop], argmax[start:stop],
                                                        g.epilogue.relu, g.tiles_h, g.tiles_w, dM, dbias)
        else:
            dz = workspace.get("dz", (stop - start, g.out_h, g.out_w, g.filters), dtype)
            kernels.conv_epilogue_backward_into(dy[start:stop], y[start:stop], argmax[start:stop], *g.epilogue,
                                                dz, dbias, g.slope)
            kernels.output_transform_backward_into(dz, g.tiles_h, g.tiles_w, dM)
        V, _ = _tile_buffer(workspace, "V", stop - start, channels, g, dtype)
        kernels.input_transform_into(x[start:stop], g.pad_top, g.pad_left, g.tiles_h, g.tiles_w, V)
        np.matmul(V[:, :tiles].transpose(0, 2, 1), dM[:, :tiles], out=partial)
        dU += partial
        if dx is not None:
            np.matmul(dM[:, :tiles], U_transposed, out=V[:, :tiles])  # V is used up: reuse it for dV
            kernels.input_transform_backward_into(V, g.pad_top, g.pad_left, g.tiles_h, g.tiles_w, dx[start:stop])
    return winograd.kernel_transform_backward(dU)

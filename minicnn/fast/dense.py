"""Dense [+ ReLU]: one BLAS product, then bias and ReLU in one pass over the output.

    forward:   y  = relu(x @ kernel + bias)          np.matmul + kernels.bias_relu_forward_in_place
    backward:  dz = dy * [y > 0]; dbias = sum of dz  kernels.bias_relu_backward_into
               dkernel = x.T @ dz;  dx = dz @ kernel.T

The arithmetic of minicnn/layers/dense.py followed by relu.py, with the output written into reused buffers.
"""
from __future__ import annotations

import numpy as np


def forward(x, kernel, bias, relu, kernels, y):
    """x (N, D_in) -> y (N, D_out), written into the given buffer. Returns y."""
    np.matmul(x, kernel, out=y)
    kernels.bias_relu_forward_in_place(y, bias, relu)
    return y


def backward(dy, x, y, kernel, relu, kernels, dz, dkernel, dbias, dx):
    """Writes dkernel (D_in, D_out), dbias (D_out,) and, if dx is not None, dx (N, D_in). Returns dx."""
    kernels.bias_relu_backward_into(dy, y, relu, dz, dbias)
    if dkernel.flags.c_contiguous:  # (the usual case: a view into the flat gradient buffer)
        np.matmul(x.T, dz, out=dkernel)  # no temporary: a large one would be page-faulted in every step
    else:
        dkernel[...] = x.T @ dz
    if dx is not None:
        np.matmul(dz, kernel.T, out=dx)
    return dx

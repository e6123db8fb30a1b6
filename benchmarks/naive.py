"""The bottom rung of the speed ladder: a convolution written the way a textbook writes it, with loops.

    y[n, oy, ox, f] = bias[f] + sum_{ky, kx, c} x[n, oy*SH + ky, ox*SW + kx, c] * kernel[ky, kx, c, f]

``conv2d_forward_loops`` walks over every image n, output pixel (oy, ox) and filter f in Python and lets NumPy do
only the innermost multiply-and-sum over the (KH, KW, C) window. Going one step further (plain Python down to
the last multiplication) would take about a minute for one batch of 8 through the seed CNN's second convolution,
so the ladder stops here.

The ladder (run.py's "what each technique buys" table) times the forward pass of each of the seed CNN's three
convolutions on a small batch, three ways:

1. naive loops (this file);
2. the reference engine's layer function, ``minicnn.layers.conv2d.conv2d_forward``: im2col in NumPy with one
   strided slice per kernel tap, then one matrix product;
3. the fast engine's im2col algorithm: im2col in a Numba kernel (``im2col_into``), then BLAS sgemm.

All three run on one thread, with BLAS held to one thread (threadpoolctl), as minicnn runs each of its threads.
(Layers called directly, outside ``train_step``/``predict``, would otherwise use BLAS's own threads; on a busy
shared machine those made every call cost a multiple of the scheduler's 4 ms tick.)

Run it alone with ``python benchmarks/naive.py``.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def same_padding(size, kernel, stride):
    """(before, after) zeros for Keras's "same" padding: output ceil(size / stride), extra zero at the end."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d_forward_loops(x, kernel, bias, stride=(1, 1), padding="valid"):
    """x (N, H, W, C), kernel (KH, KW, C, F), bias (F,) -> y (N, OH, OW, F), with explicit loops."""
    batch, height, width, channels = x.shape
    kernel_h, kernel_w, _, filters = kernel.shape
    stride_h, stride_w = stride
    if padding == "same":
        pad_h = same_padding(height, kernel_h, stride_h)
        pad_w = same_padding(width, kernel_w, stride_w)
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    out_h = (x.shape[1] - kernel_h) // stride_h + 1
    out_w = (x.shape[2] - kernel_w) // stride_w + 1
    y = np.empty((batch, out_h, out_w, filters), dtype=x.dtype)
    for n in range(batch):
        for oy in range(out_h):
            for ox in range(out_w):
                top, left = oy * stride_h, ox * stride_w
                window = x[n, top:top + kernel_h, left:left + kernel_w, :]
                for f in range(filters):
                    y[n, oy, ox, f] = np.sum(window * kernel[:, :, :, f]) + bias[f]
    return y


def _median_time(call, budget, max_calls=200, min_calls=3):
    times = []
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def fast_im2col_convolution(x, kernel, bias, strides, padding):
    """A function computing the convolution the fast engine's im2col way: the Numba im2col kernel into a
    reused buffer, then one BLAS product (no chunks, no fused epilogue: the convolution alone)."""
    from minicnn.fast.engine import NUMBA_KERNELS
    from minicnn.layers.base import window_output_size

    kernel_h, kernel_w, channels, filters = kernel.shape
    out_h, (pad_top, _) = window_output_size(x.shape[1], kernel_h, strides[0], padding)
    out_w, (pad_left, _) = window_output_size(x.shape[2], kernel_w, strides[1], padding)
    columns = np.empty((len(x) * out_h * out_w, kernel_h * kernel_w * channels), dtype=x.dtype)
    z = np.empty((len(x) * out_h * out_w, filters), dtype=x.dtype)
    kernel_matrix = kernel.reshape(-1, filters)

    def convolve():
        NUMBA_KERNELS.im2col_into(x, columns, kernel_h, kernel_w, *strides, pad_top, pad_left, out_h, out_w)
        np.matmul(columns, kernel_matrix, out=z)
        np.add(z, bias, out=z)
        return z.reshape(len(x), out_h, out_w, filters)

    return convolve


def ladder(minicnn, batch=8, budget=0.5, naive_repeats=1, seed=0):
    """Time the seed CNN's convolutions (forward, batch ``batch``) three ways. Returns a list of dicts, one per
    convolution, with milliseconds per batch for "naive", "numpy" and "numba" and the largest difference between
    the naive result and minicnn's."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl is one of minicnn's dependencies; keep the ladder usable without it
        import contextlib

        threadpool_limits = contextlib.nullcontext
    with threadpool_limits(1):
        return _ladder(minicnn, batch, budget, naive_repeats, seed)


def _ladder(minicnn, batch, budget, naive_repeats, seed):
    from minicnn.layers.conv2d import conv2d_forward

    model = minicnn.seed_cnn()
    rng = np.random.default_rng(seed)
    rows = []
    convolutions = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    for index, layer in enumerate(convolutions, start=1):
        x = rng.random((batch, *layer.input_shape), dtype=np.float32)
        kernel, bias = layer.kernel.value, layer.bias.value
        strides = tuple(getattr(layer, "strides", (1, 1)))
        padding = getattr(layer, "padding", "valid")

        naive_times = []
        for _ in range(max(1, naive_repeats)):
            t0 = time.perf_counter()
            expected = conv2d_forward_loops(x, kernel, bias, strides, padding)
            naive_times.append(time.perf_counter() - t0)
        row = {"layer": f"conv{index}", "input": list(x.shape), "output": list(expected.shape),
               "kernel": list(kernel.shape), "batch": batch,
               "macs": int(np.prod(expected.shape) * np.prod(kernel.shape[:3])),
               "naive_ms": min(naive_times) * 1e3}
        ways = {"numpy": lambda: conv2d_forward(x, kernel, bias, strides, padding)[0],
                "numba": fast_im2col_convolution(x, kernel, bias, strides, padding)}
        worst = 0.0
        for name, convolve in ways.items():
            worst = max(worst, float(np.max(np.abs(convolve() - expected))))
            row[f"{name}_ms"] = _median_time(convolve, budget) * 1e3
        row["max_abs_diff"] = worst
        rows.append(row)
    return rows


def main():
    import argparse

    import minicnn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print(f"seed CNN convolutions, forward pass, batch {args.batch} (ms per batch)")
    print(f"{'layer':6} {'input':>16} {'naive loops':>12} {'reference':>11} {'Numba+BLAS':>11}")
    for row in ladder(minicnn, batch=args.batch):
        print(f"{row['layer']:6} {str(tuple(row['input'])):>16} {row['naive_ms']:12.1f} {row['numpy_ms']:11.2f} "
              f"{row['numba_ms']:11.3f}   (max |diff| {row['max_abs_diff']:.1e})")


if __name__ == "__main__":
    main()

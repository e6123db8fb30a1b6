"""The bottom rung of the speed ladder: a convolution written the way a textbook writes it, with loops.

    y[n, oy, ox, f] = bias[f] + sum_{ky, kx, c} x[n, oy*SH + ky, ox*SW + kx, c] * kernel[ky, kx, c, f]

``conv2d_forward_loops`` walks over every image n, output pixel (oy, ox) and filter f in Python and lets NumPy do
only the innermost multiply-and-sum over the (KH, KW, C) window. Going one step further (plain Python down to
the last multiplication) would take about a minute for one batch of 8 through the seed CNN's second convolution,
so the ladder stops here.

The ladder (run.py's "what each technique buys" table) times the forward pass of each of the seed CNN's three
convolutions on a small batch, three ways:

1. naive loops (this file);
2. minicnn's vectorised NumPy twin: im2col with one strided slice per kernel tap, then one matrix product
   (``minicnn.use_kernels("numpy")``);
3. minicnn's fast path: im2col in a Numba kernel, on chunks of images that stay in cache, then BLAS sgemm.

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
        worst = 0.0
        for kernels in ("numpy", "numba"):
            with minicnn.use_kernels(kernels):
                output = layer.forward(x, False)[0]
                # a Conv2D that fuses its ReLU would return relu(y): accept either
                difference = min(float(np.max(np.abs(output - expected))),
                                 float(np.max(np.abs(output - np.maximum(expected, 0)))))
                worst = max(worst, difference)
                row[f"{kernels}_ms"] = _median_time(lambda: layer.forward(x, False), budget) * 1e3
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
    print(f"{'layer':6} {'input':>16} {'naive loops':>12} {'NumPy twin':>11} {'Numba+BLAS':>11}")
    for row in ladder(minicnn, batch=args.batch):
        print(f"{row['layer']:6} {str(tuple(row['input'])):>16} {row['naive_ms']:12.1f} {row['numpy_ms']:11.2f} "
              f"{row['numba_ms']:11.3f}   (max |diff| {row['max_abs_diff']:.1e})")


if __name__ == "__main__":
    main()

"""The fast execution path: how ``Sequential`` runs its layers when speed matters.

Read the layers first (minicnn/layers/): they are the reference. This module computes the SAME numbers (to
float32 rounding; the tests check it) with three tricks, none of which changes the math:

1. **Fusion.** A ``Conv2D -> ReLU -> MaxPool2D`` run (either of the last two optional) becomes one
   ``ConvStep``, and ``Dense -> ReLU`` one ``DenseStep``. A ConvStep works a few images at a time
   ("chunks", sized so their buffers stay in the CPU cache)::

       forward, per chunk:   columns = im2col(x)                     (kernels/im2col.py, zero padding built in)
                             z       = columns @ kernel_matrix        (BLAS)
                             y, argmax = maxpool(relu(z + bias))      (ONE kernel: kernels/fused.py)
       backward, per chunk:  dz      = route dy back through pool and ReLU, dbias += sum   (ONE kernel)
                             columns = im2col(x)                      (recomputed, unless few: see below)
                             dkernel += columns.T @ dz
                             dx      = col2im(dz @ kernel_matrix.T)   (skipped for the first layer)

   So the full-size convolution output (22 MB for the first layer at batch 128) is never built, and the ReLU
   and pooling layers never read or write memory of their own. More savings that change no number:

   * only the convolution outputs the pool reads are computed (a "valid" 2x2 pool of an 11x11 output reads
     10x10 of it; of a 3x3 output, 2x2);
   * a 3x3, stride-1 convolution over many channels computes z with Winograd's F(2x2, 3x3) instead of im2col
     (kernels/winograd.py): the same numbers (to rounding) with 2.25x fewer multiplications, forward and
     backward. When a 2x2 pool follows, each 2x2 tile of outputs is one pool window, and one kernel goes from
     the tiles straight to the pooled output (``output_transform_pool``, and back): z is never written.
   * a 3x3, stride-1 convolution of ONE input channel (a grayscale first layer) followed by such a pool runs
     as one kernel from the pixels to the pooled outputs (kernels/single_channel.py): with 9 products per
     output there is nothing for BLAS to do, and no columns or z are built. Backward it gives the kernel and
     bias gradients; an input gradient, if asked for, goes the im2col way.

2. **Reused buffers.** Activations, argmaxes and scratch arrays live in a ``Workspace`` and are reused from
   one step to the next instead of being allocated (and page-faulted in) again every step.

3. **Threads.** ``train_step`` and ``predict`` split the batch into parts, one per thread (``threads``, default
   ``min(2, cores)``; or the environment variable ``MINICNN_THREADS``). Each thread takes its part through the
   whole network with its own workspace and its own gradient buffer; the gradient buffers are summed once per
   step. The Numba kernels are serial and release the GIL (``nogil=True``); BLAS is held to one thread while
   minicnn trains or splits a batch (threadpoolctl), because BLAS's own threads would fight ours for the same
   cores. (Predicting a handful of images runs on one thread, BLAS still held to one thread: products that
   small gain nothing from BLAS's threads, and waking them costs milliseconds.) One exception: a model without
   convolutions (an MLP) TRAINS on one thread and lets BLAS use ``threads`` threads for its products. Its step
   is a few large matrix products, and split over threads each thread would need a gradient buffer as large
   as the model, summed every step (measured on a 784-256-128-10 MLP: 2x faster at batch 32, 1.5x at 128).

Every other layer (Flatten, a lone ReLU or MaxPool2D, a Softmax in the middle, ...) runs as itself
(``LayerStep``). ``Sequential(..., fuse=False)`` (or ``MINICNN_FUSE=0``) runs every layer as itself, the
layer-by-layer path the tests compare against. float64 models take the same path (the kernels are compiled for
both dtypes).
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from minicnn.backend import cold_start
from minicnn.kernels import winograd
from minicnn.kernels.fused import (bias_relu_backward, bias_relu_forward, conv_epilogue_backward,
                                   conv_epilogue_forward)
from minicnn.kernels.im2col import col2im_padded, im2col_padded
from minicnn.kernels.single_channel import single_channel_pool_backward, single_channel_pool_forward
from minicnn.layers import Conv2D, Dense, MaxPool2D, ReLU, Softmax
from minicnn.layers.base import window_output_size
from minicnn.losses import softmax_cross_entropy

WINOGRAD_MIN_CHANNELS = 16  # 3x3 stride-1 convolutions over at least this many channels use Winograd ...
WINOGRAD_MIN_TILES = 64     # ... when a call has at least this many 2x2 output tiles: each of Winograd's 16
                            # products then has that many rows. Fewer (one image of the seed CNN's second layer,
                            # 25 tiles; its third layer, 1 tile per image, at 16 images) and im2col's ONE larger
                            # product is faster: measured, training at batch 32 went 5% faster with it.
# A conv chunk's largest buffer (im2col: columns or output; Winograd: tiles). Measured on the seed CNN (2-core
# Xeon, 1.25 MB L2 per core, whole training steps and predictions, sizes interleaved): Winograd chunks of 768 KB
# beat 384 KB by 5-7% in training and inference (fewer chunks, fewer Python calls per step), 1.5 MB lost again
# (the buffers no longer stay in L2); im2col chunks (the first layer's 26x26x64 outputs) are best at 384 KB.
CHUNK_BYTES = 384 * 2 ** 10
WINOGRAD_CHUNK_BYTES = 768 * 2 ** 10
KEEP_COLUMNS_BYTES = 4 * 2 ** 20  # training keeps a batch's im2col columns for backward if they fit in this
MIN_IMAGES_PER_THREAD = 4  # below this a thread costs more than it saves


# ---------------------------------------------------------------- settings
def default_fuse():
    """``MINICNN_FUSE=0`` turns fusion off for models that do not say (default: on)."""
    value = os.environ.get("MINICNN_FUSE", "1").strip().lower()
    if value not in ("0", "1", "false", "true", "no", "yes", "off", "on", ""):
        raise ValueError(f"MINICNN_FUSE={value!r} is not understood: use 1 (fused, the default) or 0")
    return value not in ("0", "false", "no", "off")


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads):
    """The number of threads to use: ``threads`` if given, else MINICNN_THREADS, else min(2, cores)."""
    if threads is None:
        value = os.environ.get("MINICNN_THREADS", "").strip()
        if value:
            try:
                threads = int(value)
            except ValueError:
                raise ValueError(f"MINICNN_THREADS={value!r} is not a whole number") from None
        else:
            threads = min(2, available_cores())
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return threads


def split(count, parts, minimum=MIN_IMAGES_PER_THREAD):
    """[(start, stop)] cutting range(count) into at most ``parts`` nearly equal pieces of >= ``minimum`` items."""
    parts = max(1, min(parts, count // minimum))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


# ---------------------------------------------------------------- shared machinery
class _BlasSingleThreaded:
    """``with ONE_BLAS_THREAD:`` holds BLAS (OpenBLAS, MKL, ...) to one thread, then restores it.

    Nestable and safe to enter from several threads: the first one in limits BLAS, the last one out restores it.
    (It talks to the BLAS libraries through threadpoolctl's per-library controllers: a few microseconds, where
    ``threadpoolctl.threadpool_limits`` takes about 11; every prediction and training step pays it.)
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._controller = None
        self._saved = []  # (library, its thread count before)

    def controller(self):
        """threadpoolctl's view of the BLAS libraries loaded, made once (finding them takes a while)."""
        if self._controller is None:
            from threadpoolctl import ThreadpoolController
            self._controller = ThreadpoolController().select(user_api="blas")
        return self._controller

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = [(library, library.get_num_threads()) for library in self.controller().lib_controllers]
                for library, threads in self._saved:
                    if threads != 1:
                        library.set_num_threads(1)
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for library, threads in self._saved:
                    if threads != 1:
                        library.set_num_threads(threads)
                self._saved = []
        return False


ONE_BLAS_THREAD = _BlasSingleThreaded()


def blas_threads(count):
    """``with blas_threads(n):`` lets BLAS use n threads, then restores its setting (threadpoolctl)."""
    return ONE_BLAS_THREAD.controller().limit(limits=count, user_api="blas")

_pool = None
_pool_size = 0
_pool_pid = None
_pool_lock = threading.Lock()


def _worker_pool(workers):
    """The process-wide pool of worker threads: created on first use, grown if more are asked for, and created
    again in a child process after a fork (the parent's worker threads do not exist there)."""
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_size < workers or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="minicnn")
            _pool_size, _pool_pid = workers, os.getpid()
        return _pool


def run_in_threads(function, count):
    """[function(0), ..., function(count - 1)], index 0 on this thread and the others on worker threads."""
    if count == 1:
        return [function(0)]
    futures = [_worker_pool(count - 1).submit(function, index) for index in range(1, count)]
    try:
        first = function(0)
    finally:
        wait(futures)  # never return (or raise) while a worker still writes into shared buffers
    return [first] + [future.result() for future in futures]  # result() re-raises a worker's exception


class Workspace:
    """Arrays reused from call to call. ``get(key, shape, dtype)`` returns an array of that shape (contents
    undefined) backed by a buffer kept under ``key``, grown when a larger one is asked for and otherwise reused,
    so a fit() whose last batch is smaller, or predict() after fit(), allocates nothing new."""

    def __init__(self):
        self._buffers = {}
        self._views = {}  # (key, shape, dtype) -> the view last handed out (saves re-slicing every call)

    def get(self, key, shape, dtype):
        view = self._views.get((key, shape, dtype))
        if view is not None:
            return view
        size = math.prod(shape)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.dtype != np.dtype(dtype) or buffer.size < size:
            buffer = np.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = buffer
            self._views = {k: v for k, v in self._views.items() if k[0] != key}  # views of the old buffer
        if len(self._views) > 512:  # many different batch sizes: start over rather than grow
            self._views.clear()
        view = self._views[(key, shape, dtype)] = buffer[:size].reshape(shape)
        return view

    def nbytes(self):
        return sum(buffer.nbytes for buffer in self._buffers.values())


# ---------------------------------------------------------------- steps
class LayerStep:
    """A layer run as itself (the reference path)."""

    def __init__(self, layer, index):
        self.layer, self.index, self.layers = layer, index, [layer]

    def forward(self, x, workspace, training):
        return self.layer.forward(x, training)

    def backward(self, dy, cache, grads, workspace, need_input_grad):
        return self.layer.backward(dy, cache, grads, need_input_grad=need_input_grad)


class ConvStep:
    """Conv2D [-> ReLU] [-> MaxPool2D], fused, a chunk of images at a time (see the module docstring)."""

    def __init__(self, conv, relu, pool, index):
        self.conv, self.relu, self.pool, self.index = conv, relu, pool, index
        self.layers = [conv] + ([relu] if relu is not None else []) + ([pool] if pool is not None else [])
        height, width, channels = conv.input_shape
        self.kernel_h, self.kernel_w = conv.kernel_size
        self.stride_h, self.stride_w = conv.strides
        self.out_h, (self.pad_top, _) = window_output_size(height, self.kernel_h, self.stride_h, conv.padding)
        self.out_w, (self.pad_left, _) = window_output_size(width, self.kernel_w, self.stride_w, conv.padding)
        self.filters = conv.filters
        self.depth = self.kernel_h * self.kernel_w * channels  # rows of the kernel matrix
        if pool is not None:
            self.pool_h, self.pool_w = pool.pool_size
            self.pool_stride_h, self.pool_stride_w = pool.strides
            self.pooled_h, (self.pool_top, _) = window_output_size(self.out_h, self.pool_h, self.pool_stride_h,
                                                                   pool.padding)
            self.pooled_w, (self.pool_left, _) = window_output_size(self.out_w, self.pool_w, self.pool_stride_w,
                                                                    pool.padding)
        else:  # a 1x1 "pool" with stride 1 is no pooling at all
            self.pool_h = self.pool_w = self.pool_stride_h = self.pool_stride_w = 1
            self.pooled_h, self.pooled_w, self.pool_top, self.pool_left = self.out_h, self.out_w, 0, 0
        # From here on out_h x out_w are the convolution outputs we COMPUTE: only those the pool reads. A "valid"
        # 2x2 pool of an 11x11 output reads the first 10 rows and columns, of a 3x3 output the top-left 2x2. The
        # others cannot change the loss (their gradient is 0): leaving them out changes no number.
        self.out_h = min(self.out_h, (self.pooled_h - 1) * self.pool_stride_h - self.pool_top + self.pool_h)
        self.out_w = min(self.out_w, (self.pooled_w - 1) * self.pool_stride_w - self.pool_left + self.pool_w)
        self.argmax_dtype = np.uint8 if self.pool_h * self.pool_w <= 256 else np.int32
        # what the fused epilogue kernels need to know about the ReLU and the pool
        self.pool_arguments = (relu is not None, self.pool_h, self.pool_w, self.pool_stride_h, self.pool_stride_w,
                               self.pool_top, self.pool_left)
        self.tiles_h, self.tiles_w = winograd.tiles(self.out_h, self.out_w)
        # Winograd: 3x3 stride 1, enough channels, and outputs that fill most of the 2x2 tiles (for a 3x3
        # output it would compute 16 values to keep 9).
        self.winograd = (conv.kernel_size == (3, 3) and conv.strides == (1, 1) and channels >= WINOGRAD_MIN_CHANNELS
                         and self.out_h * self.out_w >= 3 * self.tiles_h * self.tiles_w)
        # A 2x2 pool whose windows are exactly the 2x2 output tiles of a 3x3 stride-1 convolution: one kernel
        # goes from the tiles to the pooled output (and back), the convolution's output is never written out.
        self.pool_is_tiles = (conv.kernel_size == (3, 3) and conv.strides == (1, 1) and pool is not None
                              and self.pool_arguments[1:] == (2, 2, 2, 2, 0, 0)
                              and (self.out_h, self.out_w) == (2 * self.tiles_h, 2 * self.tiles_w)
                              and (self.pooled_h, self.pooled_w) == (self.tiles_h, self.tiles_w))
        self.winograd_pool = self.winograd and self.pool_is_tiles
        # One input channel (a grayscale first layer), 3x3, stride 1, then such a pool: each pooled output
        # straight from the 16 pixels under its window, in one kernel (kernels/single_channel.py).
        self.single_channel = self.pool_is_tiles and channels == 1
        # images per chunk, so that the largest buffer of a chunk stays about CHUNK_BYTES
        per_image = self.out_h * self.out_w * max(self.depth, self.filters) * conv.dtype.itemsize
        self.chunk = max(1, CHUNK_BYTES // per_image)
        per_image = 16 * self.tiles_h * self.tiles_w * max(channels, self.filters) * conv.dtype.itemsize
        self.winograd_chunk = max(1, WINOGRAD_CHUNK_BYTES // per_image)

    @staticmethod
    def _chunks(batch, chunk):
        return split(batch, max(1, -(-batch // chunk)), minimum=1)

    def _im2col(self, x, columns):
        im2col_padded(x, columns, self.kernel_h, self.kernel_w, self.stride_h, self.stride_w, self.pad_top,
                      self.pad_left, self.out_h, self.out_w)

    def forward(self, x, workspace, training):
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), (len(x), self.pooled_h, self.pooled_w, self.filters), x.dtype)
        argmax = workspace.get((self, "argmax"), y.shape, self.argmax_dtype)
        if self.single_channel:
            return y, (x, y, argmax, "single channel", self._single_channel_forward(x, workspace, y, argmax))
        if self.winograd and len(x) * self.tiles_h * self.tiles_w >= WINOGRAD_MIN_TILES:
            return y, (x, y, argmax, "winograd", self._winograd_forward(x, workspace, y, argmax))
        return y, (x, y, argmax, "im2col", self._im2col_forward(x, workspace, y, argmax, training))

    def backward(self, dy, cache, grads, workspace, need_input_grad):
        x, y, argmax, method, kept = cache  # kept: Winograd's transformed kernel, or the im2col columns, or None
        dy = np.ascontiguousarray(dy)
        dbias = np.zeros(self.filters, dtype=x.dtype)  # the epilogue kernel adds each chunk's share
        dx = workspace.get((self, "dx"), x.shape, x.dtype) if need_input_grad else None
        backward = {"winograd": self._winograd_backward, "single channel": self._single_channel_backward,
                    "im2col": self._im2col_backward}[method]
        grads[0][...] = backward(dy, x, y, argmax, kept, workspace, dbias, dx)
        grads[1][...] = dbias
        return dx

    # -- im2col + one matrix product per chunk
    def _im2col_forward(self, x, workspace, y, argmax, training):
        batch, dtype, per_image = len(x), x.dtype, self.out_h * self.out_w
        kernel = self.conv.kernel.value.reshape(self.depth, self.filters)
        # A thin column matrix (few input channels, e.g. the first layer) is cheaper to keep for the backward
        # pass than to build twice; a wide one (36 MB for the seed CNN's second layer at batch 128) is not.
        kept = None
        if training and batch * per_image * self.depth * x.itemsize <= KEEP_COLUMNS_BYTES:
            kept = workspace.get((self, "columns"), (batch * per_image, self.depth), dtype)
        for start, stop in self._chunks(batch, self.chunk):
            rows = (stop - start) * per_image
            if kept is not None:
                columns = kept[start * per_image:stop * per_image]
            else:
                columns = workspace.get("columns", (rows, self.depth), dtype)
            self._im2col(x[start:stop], columns)
            z = workspace.get("z", (rows, self.filters), dtype)
            np.matmul(columns, kernel, out=z)
            conv_epilogue_forward(z.reshape(stop - start, self.out_h, self.out_w, self.filters), self.conv.bias.value,
                                  *self.pool_arguments, y[start:stop], argmax[start:stop])
        return kept

    def _im2col_backward(self, dy, x, y, argmax, kept, workspace, dbias, dx):
        dtype, per_image = x.dtype, self.out_h * self.out_w
        kernel = self.conv.kernel.value.reshape(self.depth, self.filters)
        dkernel = workspace.get((self, "dkernel"), kernel.shape, dtype)
        partial = workspace.get("dkernel", kernel.shape, dtype)
        for number, (start, stop) in enumerate(self._chunks(len(x), self.chunk)):
            rows = (stop - start) * per_image
            dz = workspace.get("dz", (stop - start, self.out_h, self.out_w, self.filters), dtype)
            conv_epilogue_backward(dy[start:stop], y[start:stop], argmax[start:stop], *self.pool_arguments,
                                   dz, dbias)
            dz = dz.reshape(rows, self.filters)
            if kept is not None:
                columns = kept[start * per_image:stop * per_image]
            else:  # recompute them
                columns = workspace.get("columns", (rows, self.depth), dtype)
                self._im2col(x[start:stop], columns)
            np.matmul(columns.T, dz, out=dkernel if number == 0 else partial)
            if number > 0:
                dkernel += partial
            if dx is not None:
                dcolumns = columns if kept is None else workspace.get("columns", (rows, self.depth), dtype)
                np.matmul(dz, kernel.T, out=dcolumns)  # (recomputed columns are used up: their buffer is reused)
                col2im_padded(dcolumns, dx[start:stop], self.kernel_h, self.kernel_w, self.stride_h, self.stride_w,
                              self.pad_top, self.pad_left, self.out_h, self.out_w)
        return dkernel.reshape(self.conv.kernel.shape)

    # -- Winograd F(2x2, 3x3): 16 matrix products per chunk
    def _tile_buffer(self, workspace, name, images, width, dtype):
        """A (16, P', width) buffer for the Winograd tiles of ``images`` images, P' >= P rows padded so that
        the 16 row blocks are not a multiple of 4 KB apart (they would evict each other from the cache)."""
        tiles = images * self.tiles_h * self.tiles_w
        padded = tiles if tiles % 2 else tiles + 1  # an odd number of rows puts the blocks on different cache sets
        return workspace.get(name, (16, padded, width), dtype), tiles

    def _winograd_forward(self, x, workspace, y, argmax):
        dtype, channels = x.dtype, x.shape[3]
        U = winograd.kernel_transform(self.conv.kernel.value)
        for start, stop in self._chunks(len(x), self.winograd_chunk):
            V, tiles = self._tile_buffer(workspace, "V", stop - start, channels, dtype)
            winograd.input_transform(x[start:stop], self.pad_top, self.pad_left, self.tiles_h, self.tiles_w, V)
            M, _ = self._tile_buffer(workspace, "M", stop - start, self.filters, dtype)
            np.matmul(V[:, :tiles], U, out=M[:, :tiles])
            if self.winograd_pool:
                winograd.output_transform_pool(M, self.tiles_h, self.tiles_w, self.conv.bias.value,
                                               self.pool_arguments[0], y[start:stop], argmax[start:stop])
                continue
            z = workspace.get("z", (stop - start, self.out_h, self.out_w, self.filters), dtype)
            winograd.output_transform(M, self.tiles_h, self.tiles_w, z)
            conv_epilogue_forward(z, self.conv.bias.value, *self.pool_arguments, y[start:stop],
                                  argmax[start:stop])
        return U

    def _winograd_backward(self, dy, x, y, argmax, U, workspace, dbias, dx):
        dtype, channels = x.dtype, x.shape[3]
        dU = np.zeros((16, channels, self.filters), dtype=dtype)
        partial = workspace.get("dU", dU.shape, dtype)
        U_transposed = np.ascontiguousarray(U.transpose(0, 2, 1))  # faster in matmul than a transposed view
        for start, stop in self._chunks(len(x), self.winograd_chunk):
            dM, tiles = self._tile_buffer(workspace, "M", stop - start, self.filters, dtype)
            if self.pool_is_tiles:
                winograd.output_transform_pool_backward(dy[start:stop], y[start:stop], argmax[start:stop],
                                                        self.pool_arguments[0], self.tiles_h, self.tiles_w, dM,
                                                        dbias)
            else:
                dz = workspace.get("dz", (stop - start, self.out_h, self.out_w, self.filters), dtype)
                conv_epilogue_backward(dy[start:stop], y[start:stop], argmax[start:stop], *self.pool_arguments,
                                       dz, dbias)
                winograd.output_transform_backward(dz, self.tiles_h, self.tiles_w, dM)
            V, _ = self._tile_buffer(workspace, "V", stop - start, channels, dtype)
            winograd.input_transform(x[start:stop], self.pad_top, self.pad_left, self.tiles_h, self.tiles_w, V)
            np.matmul(V[:, :tiles].transpose(0, 2, 1), dM[:, :tiles], out=partial)
            dU += partial
            if dx is not None:
                np.matmul(dM[:, :tiles], U_transposed, out=V[:, :tiles])  # V is used up: reuse it for dV
                winograd.input_transform_backward(V, self.pad_top, self.pad_left, self.tiles_h, self.tiles_w,
                                                  dx[start:stop])
        return winograd.kernel_transform_backward(dU)


    # -- one input channel, 3x3, then a 2x2 pool: one kernel from the pixels to the pooled output, and back
    def _single_channel_source(self, x, workspace):
        """x, zero-padded as the convolution needs if it needs it (kernels/single_channel.py reads no bounds)."""
        rows, cols = 2 * self.pooled_h + 2, 2 * self.pooled_w + 2
        if self.pad_top == 0 and self.pad_left == 0 and x.shape[1] >= rows and x.shape[2] >= cols:
            return x
        padded = workspace.get((self, "padded"), (len(x), rows, cols, 1), x.dtype)
        padded[...] = 0
        height, width = min(x.shape[1], rows - self.pad_top), min(x.shape[2], cols - self.pad_left)
        padded[:, self.pad_top:self.pad_top + height, self.pad_left:self.pad_left + width] = x[:, :height, :width]
        return padded

    def _single_channel_forward(self, x, workspace, y, argmax):
        source = self._single_channel_source(x, workspace)
        single_channel_pool_forward(source, self.conv.kernel.value, self.conv.bias.value, self.pool_arguments[0],
                                    y, argmax)
        return source

    def _single_channel_backward(self, dy, x, y, argmax, source, workspace, dbias, dx):
        if dx is not None:  # (an input gradient asked of a first layer: the im2col way gives it)
            return self._im2col_backward(dy, x, y, argmax, None, workspace, dbias, dx)
        dkernel = workspace.get((self, "dkernel"), self.conv.kernel.shape, x.dtype)
        return single_channel_pool_backward(dy, y, argmax, source, self.pool_arguments[0], dkernel, dbias)


class DenseStep:
    """Dense [-> ReLU]: one BLAS product, then bias and ReLU in one pass (kernels/fused.py)."""

    def __init__(self, dense, relu, index):
        self.dense, self.relu, self.index = dense, relu, index
        self.layers = [dense] + ([relu] if relu is not None else [])

    def forward(self, x, workspace, training):
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), (len(x), self.dense.units), x.dtype)
        np.matmul(x, self.dense.kernel.value, out=y)
        bias_relu_forward(y, self.dense.bias.value, self.relu is not None)
        return y, (x, y)

    def backward(self, dy, cache, grads, workspace, need_input_grad):
        x, y = cache
        dy = np.ascontiguousarray(dy)
        dz = workspace.get((self, "dz"), y.shape, y.dtype)
        dbias = np.empty(self.dense.units, dtype=y.dtype)
        bias_relu_backward(dy, y, self.relu is not None, dz, dbias)
        if grads[0].flags.c_contiguous:  # (the usual case: a view into the flat gradient buffer)
            np.matmul(x.T, dz, out=grads[0])  # no temporary: a large one would be page-faulted in every step
        else:
            grads[0][...] = x.T @ dz
        grads[1][...] = dbias
        if not need_input_grad:
            return None
        dx = workspace.get((self, "dx"), x.shape, x.dtype)
        np.matmul(dz, self.dense.kernel.value.T, out=dx)
        return dx


def build_steps(layers):
    """Group a model's layers into steps: Conv2D [ReLU] [MaxPool2D] and Dense [ReLU] runs fuse."""
    steps, index = [], 0
    while index < len(layers):
        layer = layers[index]
        follows = index + 1
        relu = pool = None
        if type(layer) in (Conv2D, Dense) and follows < len(layers) and type(layers[follows]) is ReLU:
            relu = layers[follows]
            follows += 1
        if type(layer) is Conv2D:
            if follows < len(layers) and type(layers[follows]) is MaxPool2D:
                pool = layers[follows]
                follows += 1
            steps.append(ConvStep(layer, relu, pool, index))
        elif type(layer) is Dense:
            steps.append(DenseStep(layer, relu, index))
        else:
            steps.append(LayerStep(layer, index))
        index = follows
    return steps


# ---------------------------------------------------------------- the engine a Sequential model uses
class Engine:
    """Runs a built Sequential model: fused or layer by layer, on one thread or several."""

    def __init__(self, model):
        self.model = model
        self.steps = build_steps(model.layers)
        # a model without convolutions (an MLP) trains on one thread with BLAS's threads: see gradients()
        self.blas_splits_training = not any(isinstance(layer, Conv2D) for layer in model.layers)
        self.logit_steps = self.steps[:-1] if isinstance(self.steps[-1].layers[-1], Softmax) else self.steps
        self.workspaces = []
        self.thread_grads = []  # per extra thread: (flat gradient buffer, per-layer views into it)
        self._lock = threading.Lock()

    # -- per-thread resources
    def _workspace(self, slot):
        while len(self.workspaces) <= slot:
            self.workspaces.append(Workspace())
        return self.workspaces[slot]

    def _grads_for(self, slot):
        """Gradient arrays (one list per layer) for extra thread ``slot`` >= 1, laid out like flat_grads."""
        while len(self.thread_grads) < slot:
            flat = np.zeros_like(self.model.flat_grads)
            views, offset = [], 0
            for layer in self.model.layers:
                arrays = []
                for parameter in layer.parameters():
                    arrays.append(flat[offset:offset + parameter.size].reshape(parameter.shape))
                    offset += parameter.size
                views.append(arrays)
            self.thread_grads.append((flat, views))
        return self.thread_grads[slot - 1]

    # -- one thread's work
    def _forward(self, steps, x, workspace, training):
        caches = []
        for step in steps:
            x, cache = step.forward(x, workspace, training)
            caches.append(cache)
        return x, caches

    def _loss_and_gradients(self, x, y, grads, scale, need_input_grad, workspace):
        if not self.model.fuse:
            return self.model._layer_loss_and_gradients(x, y, grads, scale, need_input_grad)
        logits, caches = self._forward(self.logit_steps, x, workspace, True)
        loss_sum, dx = softmax_cross_entropy(logits, y, scale)
        correct = int((logits.argmax(axis=1) == (y if y.ndim == 1 else y.argmax(axis=1))).sum())
        for number in range(len(self.logit_steps) - 1, -1, -1):
            step = self.logit_steps[number]
            dx = step.backward(dx, caches[number], grads[step.index], workspace, number > 0 or need_input_grad)
        return loss_sum, correct, dx

    def _outputs(self, x, logits_only, workspace):
        if not self.model.fuse:
            layers = self.model._logit_layers() if logits_only else self.model.layers
            for layer in layers:
                x, _ = layer.forward(x, False)
            return x
        return self._forward(self.logit_steps if logits_only else self.steps, x, workspace, False)[0]

    # -- what Sequential calls
    def loss_and_gradients(self, x, y, grads, scale, need_input_grad):
        """One thread: see Sequential.loss_and_gradients."""
        with self._lock, ONE_BLAS_THREAD:
            loss_sum, correct, dx = self._loss_and_gradients(x, y, grads, scale, need_input_grad,
                                                             self._workspace(0))
            return loss_sum, correct, (None if dx is None else np.array(dx))

    def gradients(self, x, y):
        """The mean-loss gradient of a batch into model.flat_grads, the batch split over threads.
        Returns (sum of losses, correct predictions)."""
        model = self.model
        threads = resolve_threads(model.threads)
        own_grads = [[p.grad for p in layer.parameters()] for layer in model.layers]
        scale = 1.0 / len(x)
        if self.blas_splits_training and threads > 1:
            # No convolutions: a step is a few large matrix products, and split over threads each thread would
            # need a gradient buffer as large as the model, summed every step. BLAS splits the products instead.
            with self._lock, blas_threads(threads):
                loss_sum, correct, _ = self._loss_and_gradients(x, y, own_grads, scale, False, self._workspace(0))
            return loss_sum, correct
        parts = split(len(x), threads)

        def part(slot):
            start, stop = parts[slot]
            grads = own_grads if slot == 0 else self._grads_for(slot)[1]
            loss_sum, correct, _ = self._loss_and_gradients(x[start:stop], y[start:stop], grads, scale, False,
                                                            self._workspace(slot))
            return loss_sum, correct

        with self._lock, ONE_BLAS_THREAD:
            for slot in range(1, len(parts)):  # (made here, before the threads start)
                self._workspace(slot), self._grads_for(slot)
            results = run_in_threads(part, len(parts))
            for slot in range(1, len(parts)):
                model.flat_grads += self._grads_for(slot)[0]
        return sum(r[0] for r in results), sum(r[1] for r in results)

    def outputs(self, x, logits_only=False):
        """The model's outputs (or logits) for a prepared batch, split over threads; a new array."""
        with cold_start(len(x)) as cold:
            if cold:  # the first small prediction of the process: NumPy twins, this thread (minicnn/backend.py)
                with self._lock:
                    return np.array(self._outputs(x, logits_only, self._workspace(0)))
        parts = split(len(x), resolve_threads(self.model.threads))
        # BLAS is held to one thread here too, even for one image: a product that small gains nothing from
        # BLAS's threads, and waking them (on a busy machine) made a one-image predict ~20x slower.
        if len(parts) == 1:
            with self._lock, ONE_BLAS_THREAD:
                return np.array(self._outputs(x, logits_only, self._workspace(0)))
        with self._lock, ONE_BLAS_THREAD:
            self._workspace(len(parts) - 1)  # (made here, before the threads start)
            results = run_in_threads(
                lambda slot: np.array(self._outputs(x[parts[slot][0]:parts[slot][1]], logits_only,
                                                    self._workspace(slot))), len(parts))
        return np.concatenate(results)

"""The fast engine's plan: which layers run together, and which algorithm computes each convolution.

``build_steps(layers)`` groups a model's layers into steps:

=====================================  =============================================================
layers                                 step
=====================================  =============================================================
Conv2D [ReLU | LeakyReLU] [MaxPool2D]  ``ConvStep``: one of three algorithms, chosen per call by
                                       ``choose_conv_algorithm`` (below), with bias, ReLU and pool
                                       fused into the same pass (a LeakyReLU of slope > 0: its slope in the
                                       epilogue kernels, kernels/fused.py)
Dense [ReLU | LeakyReLU]               ``DenseStep``: minicnn/fast/dense.py (a LeakyReLU: its slope in the
                                       bias kernel, kernels/fused.py)
ReLU, MaxPool2D (alone)                ``KernelStep``: the ReLU's Numba kernel (kernels/relu.py); a pool by the
                                       conv epilogue kernel without bias or ReLU (kernels/fused.py)
RandomRotation/Translation/Zoom        ``AugmentStep``: the layer's draw, then the warp kernel (kernels/warp.py);
                                       at the start of a model, run on the whole batch before it is split
BatchNormalization [ReLU | LeakyReLU]  ``BatchNormStep``: Numba kernels (kernels/batch_norm.py): in training
                                       the batch statistics in one pass, added up over the threads (each
                                       thread has part of the batch); at inference one affine pass
Conv2D BatchNormalization [ReLU |     at inference only (``build_steps(layers, inference=True)``):
  LeakyReLU] [MaxPool2D]               ``FoldedConvStep``, the moving statistics folded into the kernel and
                                       bias, one ConvStep; in training BatchNormStep [+ ReLU] after the ConvStep
Dropout                                ``DropoutStep``: the mask drawn in a Numba kernel (kernels/dropout.py),
                                       the layer's own hash of (seed, call, element), so any split of the
                                       batch over threads draws the reference engine's mask
Flatten, Softmax, ...                  ``LayerStep``: the layer's own functions (cheap: a reshape, 10 numbers)
=====================================  =============================================================

``choose_conv_algorithm(geometry, images)`` is the ONE place the convolution algorithm is decided:

* ``single-channel``: 3x3, stride 1, one input channel, a 2x2 pool whose windows are the 2x2 output tiles
  (a grayscale first layer): minicnn/fast/conv_single_channel.py;
* ``single-channel-rows``: any other kernel size (LeNet-5's 5x5), stride 1, one input channel, a "valid" 2x2
  pool: minicnn/fast/conv_single_channel_rows.py;
* ``winograd``: 3x3, stride 1, at least WINOGRAD_MIN_CHANNELS input channels, outputs that fill most of the
  2x2 tiles, and at least WINOGRAD_MIN_TILES tiles in the call: minicnn/fast/conv_winograd.py;
* ``im2col``: everything else: minicnn/fast/conv_im2col.py.

A LeakyReLU after the convolution: the single-channel kernels have no slope in their fused epilogue, so it runs
by im2col (or Winograd) instead; Winograd's output transform with the pool has none either, so Winograd then
writes z and runs the epilogue kernel (``geometry.pool_is_tiles`` is False for a leaky epilogue).

``describe(steps, batch_size, threads)`` says it in words; ``Sequential.plan(batch_size)`` prints it. Every step
computes what the layers it replaces compute (tests/test_fast_engine.py compares each with the composition of
the layers' own functions). The constants below were measured: docs/performance.md.
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass

import numpy as np

from minicnn.fast import conv_im2col, conv_single_channel, conv_single_channel_rows, conv_winograd
from minicnn.fast import dense as fast_dense
from minicnn.fast.parallel import split
from minicnn.kernels import winograd
from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, LeakyReLU, MaxPool2D, ReLU
from minicnn.layers.base import window_output_size

WINOGRAD_MIN_CHANNELS = 16  # Winograd for 3x3 stride-1 convolutions over at least this many channels ...
WINOGRAD_MIN_TILES = 20     # ... when a call has at least this many 2x2 output tiles (else im2col's one product)
CHUNK_BYTES = 384 * 2 ** 10           # im2col: a chunk's largest buffer (columns or z) ...
WINOGRAD_CHUNK_BYTES = 768 * 2 ** 10  # ... Winograd: its tiles

CONV_ALGORITHMS = {"single-channel": conv_single_channel, "winograd": conv_winograd, "im2col": conv_im2col,
                   "single-channel-rows": conv_single_channel_rows}

# What the fused epilogue kernels need to know of the ReLU and the pool after a convolution (no pool: 1x1, stride 1)
Epilogue = namedtuple("Epilogue", "relu pool_h pool_w stride_h stride_w pad_top pad_left")


@dataclass(eq=False)
class ConvGeometry:
    """Everything about a Conv2D [ReLU] [MaxPool2D] run that does not change from call to call."""

    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    channels: int
    filters: int
    out_h: int          # the convolution outputs COMPUTED: only those the pool reads
    out_w: int
    pooled_h: int       # the step's output (after the pool; = out_h, out_w without one)
    pooled_w: int
    epilogue: Epilogue
    tiles_h: int        # Winograd's 2x2 output tiles
    tiles_w: int
    winograd_fits: bool  # 3x3, stride 1, enough channels, outputs that fill the tiles
    pool_is_tiles: bool  # a 2x2 pool whose windows are exactly the 2x2 output tiles of a 3x3 stride-1 convolution
                         # (and no LeakyReLU: the kernels that fuse such a pool have no slope)
    chunk: int           # images per im2col chunk
    winograd_chunk: int  # images per Winograd chunk
    argmax_dtype: type
    slope: float = 0.0   # a LeakyReLU's negative slope (> 0) in the epilogue; 0: none (relu says if a ReLU)

    @property
    def depth(self):
        """Rows of the kernel matrix: KH * KW * C."""
        return self.kernel_h * self.kernel_w * self.channels


def conv_geometry(conv, relu, pool, leaky=None):
    height, width, channels = conv.input_shape
    kernel_h, kernel_w = conv.kernel_size
    stride_h, stride_w = conv.strides
    out_h, (pad_top, _) = window_output_size(height, kernel_h, stride_h, conv.padding)
    out_w, (pad_left, _) = window_output_size(width, kernel_w, stride_w, conv.padding)
    if pool is not None:
        (pool_h, pool_w), (pool_stride_h, pool_stride_w) = pool.pool_size, pool.strides
        pooled_h, (pool_top, _) = window_output_size(out_h, pool_h, pool_stride_h, pool.padding)
        pooled_w, (pool_left, _) = window_output_size(out_w, pool_w, pool_stride_w, pool.padding)
    else:
        pool_h = pool_w = pool_stride_h = pool_stride_w = 1
        pooled_h, pooled_w, pool_top, pool_left = out_h, out_w, 0, 0
    # Only the convolution outputs the pool reads are computed: a "valid" 2x2 pool of an 11x11 output reads the
    # first 10 rows and columns. The others cannot change the loss (their gradient is 0).
    out_h = min(out_h, (pooled_h - 1) * pool_stride_h - pool_top + pool_h)
    out_w = min(out_w, (pooled_w - 1) * pool_stride_w - pool_left + pool_w)
    epilogue = Epilogue(relu is not None, pool_h, pool_w, pool_stride_h, pool_stride_w, pool_top, pool_left)
    tiles_h, tiles_w = winograd.tiles(out_h, out_w)
    three_by_three = (kernel_h, kernel_w) == (3, 3) and (stride_h, stride_w) == (1, 1)
    itemsize = conv.dtype.itemsize
    depth = kernel_h * kernel_w * channels
    return ConvGeometry(
        kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, channels, conv.filters, out_h, out_w,
        pooled_h, pooled_w, epilogue, tiles_h, tiles_w,
        winograd_fits=(three_by_three and channels >= WINOGRAD_MIN_CHANNELS
                       and out_h * out_w >= 3 * tiles_h * tiles_w),  # (a 3x3 output: 16 values to keep 9)
        pool_is_tiles=(leaky is None and three_by_three and tuple(epilogue[1:]) == (2, 2, 2, 2, 0, 0)
                       and (out_h, out_w) == (2 * tiles_h, 2 * tiles_w) and (pooled_h, pooled_w) == (tiles_h, tiles_w)),
        chunk=max(1, CHUNK_BYTES // (out_h * out_w * max(depth, conv.filters) * itemsize)),
        winograd_chunk=max(1, WINOGRAD_CHUNK_BYTES
                           // (16 * tiles_h * tiles_w * max(channels, conv.filters) * itemsize)),
        argmax_dtype=np.uint8 if pool_h * pool_w <= 256 else np.int32,
        slope=0.0 if leaky is None else leaky.negative_slope)


def choose_conv_algorithm(geometry, images):
    """(algorithm name, why) for a call on ``images`` images. See the module docstring."""
    g = geometry
    shape = f"{g.kernel_h}x{g.kernel_w} stride {g.stride_h}"
    if g.pool_is_tiles and g.channels == 1:
        return "single-channel", f"{shape}, 1 input channel, 2x2 pool on the output tiles"
    if (g.channels == 1 and (g.stride_h, g.stride_w) == (1, 1) and tuple(g.epilogue[1:]) == (2, 2, 2, 2, 0, 0)
            and (g.out_h, g.out_w) == (2 * g.pooled_h, 2 * g.pooled_w)):
        if g.slope:
            return "im2col", f"{shape}, 1 input channel: the single-channel kernels have no leaky slope"
        return "single-channel-rows", f"{shape}, 1 input channel, 2x2 pool, along image rows"
    tiles = images * g.tiles_h * g.tiles_w
    if g.winograd_fits and tiles >= WINOGRAD_MIN_TILES:
        leaky_pool = g.slope and g.epilogue.pool_h > 1
        return "winograd", (f"{shape}, {g.channels} channels, {tiles} tiles per thread"
                            + ("; z, then the leaky epilogue (the pooling output transform has no slope)"
                               if leaky_pool else ""))
    if g.winograd_fits:
        return "im2col", f"{shape}, {tiles} tiles per thread < {WINOGRAD_MIN_TILES}: one larger product wins"
    return "im2col", f"{shape}, {g.channels} channel{'s' if g.channels != 1 else ''}"


# ---------------------------------------------------------------- steps
def _layer_words(layers):
    """How describe() names the layers fused after a convolution: relu, leaky_relu(0.2), batchnorm, pool."""
    words = {ReLU: "relu", MaxPool2D: "pool", BatchNormalization: "batchnorm"}
    return [f"leaky_relu({layer.negative_slope:g})" if type(layer) is LeakyReLU else words[type(layer)]
            for layer in layers]


class ConvStep:
    """Conv2D [-> ReLU | LeakyReLU] [-> MaxPool2D], fused: the algorithm ``choose_conv_algorithm`` names."""

    def __init__(self, conv, relu, pool, index, leaky=None):
        self.conv, self.index = conv, index
        self.layers = [layer for layer in (conv, relu, leaky, pool) if layer is not None]
        self.geometry = conv_geometry(conv, relu, pool, leaky)
        self.statistics_for = None  # the BatchNormStep right after it in training (build_steps): see forward

    def forward(self, x, kernels, workspace, training):
        g = self.geometry
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), (len(x), g.pooled_h, g.pooled_w, g.filters), x.dtype)
        argmax = workspace.get((self, "argmax"), y.shape, g.argmax_dtype)
        name, _ = choose_conv_algorithm(g, len(x))
        arguments = (x, self.conv.kernel.value, self.conv.bias.value, g, kernels, workspace, y, argmax, training)
        if not (training and self.statistics_for is not None):
            return y, (name, x, y, argmax, CONV_ALGORITHMS[name].forward(*arguments))
        # A BatchNormalization follows, in training: its batch-statistics sums (kernels.batch_norm_sums_into)
        # are taken chunk by chunk right after the epilogue wrote the chunk, while it is still in the cache, instead
        # of in a pass of their own over the whole output. The BatchNormStep then reads them from the workspace.
        sums = workspace.get((self.statistics_for, "sums"), (2, g.filters), np.float64)
        sums[...] = 0
        statistics = (self.statistics_for.layer.moving_mean.value.astype(np.float64), sums)
        if name in ("im2col", "winograd"):
            kept = CONV_ALGORITHMS[name].forward(*arguments, statistics=statistics)
        else:  # (the one-channel kernels do the whole batch at once: the sums after it)
            kept = CONV_ALGORITHMS[name].forward(*arguments)
            kernels.batch_norm_sums_into(y.reshape(-1, g.filters), *statistics)
        return y, (name, x, y, argmax, kept)

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        name, x, y, argmax, kept = cache  # kept: the algorithm's own (im2col's columns, Winograd's U, ...)
        dbias = np.zeros(self.geometry.filters, dtype=x.dtype)  # each chunk adds its share
        dx = workspace.get((self, "dx"), x.shape, x.dtype) if need_input_grad else None
        dkernel = CONV_ALGORITHMS[name].backward(np.ascontiguousarray(dy), x, y, argmax, kept, self.conv.kernel.value,
                                                 self.geometry, kernels, workspace, dbias, dx)
        grads[0][...] = dkernel.reshape(self.conv.kernel.shape)
        grads[1][...] = dbias
        return dx

    def describe(self, images):
        name, why = choose_conv_algorithm(self.geometry, images)
        if self.statistics_for is not None:
            why += "; the next batchnorm's sums taken in its output pass"
        return "+".join([name] + _layer_words(self.layers[1:])), why


class DenseStep:
    """Dense [-> ReLU | LeakyReLU]: minicnn/fast/dense.py."""

    def __init__(self, dense, relu, index, leaky=None):
        self.dense, self.relu, self.index = dense, relu is not None, index
        self.slope = None if leaky is None else leaky.negative_slope  # a LeakyReLU: its slope in the bias kernel
        self.layers = [dense] + [layer for layer in (relu, leaky) if layer is not None]

    def forward(self, x, kernels, workspace, training):
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), (len(x), self.dense.units), x.dtype)
        if self.slope is None:
            fast_dense.forward(x, self.dense.kernel.value, self.dense.bias.value, self.relu, kernels, y)
            return y, (x, y, None)
        positive = workspace.get((self, "positive"), y.shape, np.bool_)
        np.matmul(x, self.dense.kernel.value, out=y)
        kernels.bias_leaky_relu_forward_in_place(y, self.dense.bias.value, self.slope, positive)
        return y, (x, y, positive)

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        x, y, positive = cache
        dz = workspace.get((self, "dz"), y.shape, y.dtype)
        dbias = np.empty(self.dense.units, dtype=y.dtype)
        dx = workspace.get((self, "dx"), x.shape, x.dtype) if need_input_grad else None
        dy = np.ascontiguousarray(dy)
        if positive is None:
            fast_dense.backward(dy, x, y, self.dense.kernel.value, self.relu, kernels, dz, grads[0], dbias, dx)
        else:
            kernels.bias_leaky_relu_backward_into(dy, positive, self.slope, dz, dbias)
            fast_dense.backward(dz, x, y, self.dense.kernel.value, False, kernels, dz, grads[0], dbias, dx)
        grads[1][...] = dbias
        return dx

    def describe(self, images):
        after = "+relu" if self.relu else f"+leaky_relu({self.slope:g})" if self.slope is not None else ""
        return "dense" + after, f"{self.dense.input_shape[0]} -> {self.dense.units}, BLAS"


class KernelStep:
    """A ReLU or a MaxPool2D that no convolution absorbed: the layer's Numba kernel."""

    def __init__(self, layer, index):
        self.layer, self.index, self.layers = layer, index, [layer]

    def forward(self, x, kernels, workspace, training):
        x = np.ascontiguousarray(x)
        if isinstance(self.layer, ReLU):
            y = kernels.relu_forward(x)
            return y, y
        # The pool by the convolutions' epilogue kernel (kernels/fused.py: no ReLU, a bias of -0.0, which adds
        # nothing, not even to the sign of a zero): the same maxima and tie rule as kernels.maxpool_forward, but
        # vectorised over the channels, into the workspace, the padding skipped instead of built.
        pool = self.layer
        batch, height, width, channels = x.shape
        out_h, (pad_top, _) = window_output_size(height, pool.pool_size[0], pool.strides[0], pool.padding)
        out_w, (pad_left, _) = window_output_size(width, pool.pool_size[1], pool.strides[1], pool.padding)
        window = (*pool.pool_size, *pool.strides, pad_top, pad_left)
        y = workspace.get((self, "y"), (batch, out_h, out_w, channels), x.dtype)
        argmax = workspace.get((self, "argmax"), y.shape,
                               np.uint8 if pool.pool_size[0] * pool.pool_size[1] <= 256 else np.int32)
        kernels.conv_epilogue_forward_into(x, np.full(channels, -0.0, x.dtype), False, *window, y, argmax)
        return y, (y, argmax, x.shape, window)

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        if not need_input_grad:
            return None
        dy = np.ascontiguousarray(dy)
        if isinstance(self.layer, ReLU):
            return kernels.relu_backward(dy, cache)
        y, argmax, shape, window = cache
        dx = workspace.get((self, "dx"), shape, dy.dtype)
        kernels.conv_epilogue_backward_into(dy, y, argmax, False, *window, dx, np.zeros(shape[3], dy.dtype))
        return dx

    def describe(self, images):
        return type(self.layer).__name__.lower(), "kernel (nothing to fuse it with)"


class AugmentStep:
    """RandomRotation, RandomTranslation or RandomZoom: the layer draws this call's transforms (training only),
    the warp kernel (minicnn/kernels/warp.py) applies them; the identity at inference."""

    def __init__(self, layer, index):
        self.layer, self.index, self.layers = layer, index, [layer]

    def forward(self, x, kernels, workspace, training):
        if not training:
            return x, None
        transforms = self.layer.next_transforms(len(x))
        return self.warp(x, transforms, kernels), transforms

    def warp(self, x, transforms, kernels):
        """The images x warped by their transforms (any slice of a batch: each image is warped on its own)."""
        return kernels.affine_warp(np.ascontiguousarray(x), transforms, self.layer.fill_mode_code,
                                   self.layer.fill_value, self.layer.interpolation == "nearest")

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        if not need_input_grad:
            return None
        if cache is None:
            return dy
        return kernels.affine_warp_backward(np.ascontiguousarray(dy), cache, self.layer.fill_mode_code,
                                            self.layer.interpolation == "nearest")

    def describe(self, images):
        return "warp", f"{self.layer.interpolation}, fill {self.layer.fill_mode}; training only"


class BatchNormStep:
    """BatchNormalization [-> ReLU]: kernels/batch_norm.py. In training each thread sums its rows,
    ``workspace.part`` adds the threads' sums up (a barrier), so the statistics are the whole batch's, as on the
    reference engine. A ReLU right after it is fused into the same kernels."""

    def __init__(self, layer, index, relu=None, after_relu=False, leaky=None):
        self.layer, self.index, self.relu, self.after_relu = layer, index, relu is not None, after_relu
        self.slope = 0.0 if leaky is None else leaky.negative_slope  # a LeakyReLU after it: its slope in the kernels
        self.layers = [layer] + [after for after in (relu, leaky) if after is not None]
        self.sums_from_conv = False  # training: the ConvStep before it has put this thread's sums in the workspace

    def _affine(self, mean, variance, dtype):
        """(inv, scale, shift): the layer's y = x * scale + shift for these statistics."""
        layer = self.layer
        inv = 1 / np.sqrt(variance + dtype.type(layer.epsilon))
        scale = inv * layer.gamma.value if layer.scale else inv
        shift = -mean * scale
        if layer.center:
            shift = shift + layer.beta.value
        return inv, scale, shift

    def forward(self, x, kernels, workspace, training):
        layer, dtype = self.layer, x.dtype
        rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        y = workspace.get((self, "y"), rows.shape, dtype)
        if not training:
            inv, scale, shift = self._affine(layer.moving_mean.value, layer.moving_variance.value, dtype)
            kernels.batch_norm_forward_into(rows, scale, shift, self.relu, y, self.slope)
            return y.reshape(x.shape), (False, rows, y, None, None, scale)
        part = workspace.part
        layer.check_training_batch(part.total)
        center = layer.moving_mean.value.astype(np.float64)  # the same on every thread: see kernels/batch_norm.py
        if self.sums_from_conv:  # (taken with the same center, in the ConvStep's output pass)
            sums = workspace.get((self, "sums"), (2, rows.shape[1]), np.float64)
        else:
            sums = kernels.batch_norm_sums_into(rows, center, np.zeros((2, rows.shape[1])))
        sums = part.total_of((self, "forward"), sums)
        count = part.total * (len(rows) // len(x))
        offset = sums[0] / count
        mean = (center + offset).astype(dtype)
        variance = np.maximum(sums[1] / count - offset * offset, 0).astype(dtype)
        if part.slot == 0:  # (the other threads read the moving mean above, before the reduction's barrier)
            momentum = dtype.type(layer.momentum)
            layer.moving_mean.value[...] = layer.moving_mean.value * momentum + mean * (1 - momentum)
            layer.moving_variance.value[...] = layer.moving_variance.value * momentum + variance * (1 - momentum)
        inv, scale, shift = self._affine(mean, variance, dtype)
        kernels.batch_norm_forward_into(rows, scale, shift, self.relu, y, self.slope)
        return y.reshape(x.shape), (True, rows, y, mean, inv, scale)

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        training, rows, y, mean, inv, scale = cache
        dy_rows = np.ascontiguousarray(dy).reshape(rows.shape)
        dtype = rows.dtype
        if mean is None:  # (gradients at inference: the moving statistics)
            mean = self.layer.moving_mean.value
            inv = 1 / np.sqrt(self.layer.moving_variance.value + dtype.type(self.layer.epsilon))
        sums = kernels.batch_norm_backward_sums_into(dy_rows, y, self.relu, rows, mean, inv,
                                                     np.zeros((2, rows.shape[1])), self.slope)
        position = 0
        if self.layer.scale:  # this thread's share: the engine adds the threads' gradient buffers up
            grads[0][...] = sums[1]
            position = 1
        if self.layer.center:
            grads[position][...] = sums[0]
        if not need_input_grad:
            return None
        dx = workspace.get((self, "dx"), rows.shape, dtype)
        if not training:  # (dbeta_mean = dgamma_mean = 0: the statistics are constants)
            zeros = np.zeros(rows.shape[1], dtype=dtype)
            kernels.batch_norm_backward_into(dy_rows, y, self.relu, rows, mean, inv, scale, zeros, zeros, dx,
                                             self.slope)
            return dx.reshape(dy.shape)
        part = workspace.part
        sums = part.total_of((self, "backward"), sums)
        count = part.total * (len(rows) // len(dy))
        kernels.batch_norm_backward_into(dy_rows, y, self.relu, rows, mean, inv, scale,
                                         (sums[0] / count).astype(dtype), (sums[1] / count).astype(dtype), dx,
                                         self.slope)
        return dx.reshape(dy.shape)

    def describe(self, images):
        why = "kernels: batch statistics in one pass, summed over the threads"
        if self.after_relu:
            why += "; after a ReLU: not foldable at inference"
        if self.sums_from_conv:
            why += "; its sums from the convolution's output pass"
        after = "+relu" if self.relu else f"+leaky_relu({self.slope:g})" if self.slope else ""
        return "batchnorm" + after, why


class FoldedConvStep(ConvStep):
    """At inference, Conv2D -> BatchNormalization [-> ReLU] [-> MaxPool2D] as ONE convolution: BatchNormalization
    with its moving statistics is a per-filter affine map y = z * scale + shift, so it folds into the convolution
    (kernel * scale, bias * scale + shift), and the ReLU and pool after it fuse as after any convolution.
    Training runs the unfolded plan (ConvStep, BatchNormStep: the batch statistics change every step)."""

    def __init__(self, conv, norm, relu, pool, index, leaky=None):
        super().__init__(conv, relu, pool, index, leaky)
        self.norm = norm
        self.layers = [layer for layer in (conv, norm, relu, leaky, pool) if layer is not None]

    def forward(self, x, kernels, workspace, training):
        if training:
            raise RuntimeError("FoldedConvStep is the inference plan's; training uses the unfolded one")
        norm, dtype = self.norm, x.dtype
        inv = 1 / np.sqrt(norm.moving_variance.value + dtype.type(norm.epsilon))
        scale = inv * norm.gamma.value if norm.scale else inv
        shift = -norm.moving_mean.value * scale
        if norm.center:
            shift = shift + norm.beta.value
        kernel = self.conv.kernel.value * scale               # (KH, KW, C, F) * (F,)
        bias = self.conv.bias.value * scale + shift
        g = self.geometry
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), (len(x), g.pooled_h, g.pooled_w, g.filters), dtype)
        argmax = workspace.get((self, "argmax"), y.shape, g.argmax_dtype)
        name, _ = choose_conv_algorithm(g, len(x))
        CONV_ALGORITHMS[name].forward(x, kernel, bias, g, kernels, workspace, y, argmax, False)
        return y, None

    def describe(self, images):
        name, why = choose_conv_algorithm(self.geometry, images)
        return "+".join([name] + _layer_words(self.layers[1:])), why + "; batchnorm folded into its kernel and bias"


class DropoutStep:
    """Dropout: the mask drawn by kernels/dropout.py for this thread's elements of the batch. The call counter
    (``layer.calls``) is read here and advanced once per training step by the engine (all threads see one value)."""

    def __init__(self, layer, index):
        self.layer, self.index, self.layers = layer, index, [layer]

    def forward(self, x, kernels, workspace, training):
        if not training or self.layer.rate == 0:
            return x, None
        x = np.ascontiguousarray(x)
        y = workspace.get((self, "y"), x.shape, x.dtype)
        mask = workspace.get((self, "mask"), x.shape, np.bool_)
        offset = workspace.part.start * (x.size // len(x))
        kernels.dropout_forward_into(x, self.layer.rate, self.layer.seed, self.layer.calls, offset, y, mask)
        return y, mask

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        if not need_input_grad or cache is None:
            return dy if need_input_grad else None
        dx = workspace.get((self, "dx"), cache.shape, dy.dtype)
        return kernels.dropout_backward_into(np.ascontiguousarray(dy), cache, self.layer.rate, dx)

    def describe(self, images):
        return "dropout", f"kernel: rate {self.layer.rate:g}, mask from (seed, call, element)"


class LayerStep:
    """A layer run as itself (Flatten, Softmax, ...): its own forward and backward functions."""

    def __init__(self, layer, index):
        self.layer, self.index, self.layers = layer, index, [layer]

    def forward(self, x, kernels, workspace, training):
        return self.layer.forward(x, training)

    def backward(self, dy, cache, grads, kernels, workspace, need_input_grad):
        return self.layer.backward(dy, cache, grads, need_input_grad=need_input_grad)

    def describe(self, images):
        return type(self.layer).__name__.lower(), "the layer's own function"


def build_steps(layers, inference=False):
    """Group a model's layers into steps: Conv2D [ReLU] [MaxPool2D], Dense [ReLU | LeakyReLU] and
    BatchNormalization [ReLU] runs fuse. ``inference``: the plan for predictions, where a BatchNormalization right
    after a Conv2D folds into it (FoldedConvStep) with the ReLU and pool after it."""
    steps, index = [], 0

    def next_is(position, kind):
        return position < len(layers) and type(layers[position]) is kind

    def fusable_leaky(position):  # (slope 0 is not a ReLU at x = 0: it stays a layer of its own)
        return next_is(position, LeakyReLU) and layers[position].negative_slope > 0

    while index < len(layers):
        layer = layers[index]
        follows = index + 1
        relu = pool = None
        if inference and type(layer) is Conv2D and next_is(follows, BatchNormalization):
            norm = layers[follows]
            follows += 1
            leaky = None
            if next_is(follows, ReLU):
                relu = layers[follows]
                follows += 1
            elif fusable_leaky(follows):
                leaky = layers[follows]
                follows += 1
            if next_is(follows, MaxPool2D):
                pool = layers[follows]
                follows += 1
            steps.append(FoldedConvStep(layer, norm, relu, pool, index, leaky))
            index = follows
            continue
        if type(layer) in (Conv2D, Dense, BatchNormalization) and next_is(follows, ReLU):
            relu = layers[follows]
            follows += 1
        if type(layer) is Conv2D:
            leaky = None
            if relu is None and fusable_leaky(follows):
                leaky = layers[follows]
                follows += 1
            if next_is(follows, MaxPool2D):
                pool = layers[follows]
                follows += 1
            steps.append(ConvStep(layer, relu, pool, index, leaky))
        elif type(layer) is Dense:
            leaky = None
            if relu is None and next_is(follows, LeakyReLU):
                leaky = layers[follows]
                follows += 1
            steps.append(DenseStep(layer, relu, index, leaky))
        elif type(layer) in (ReLU, MaxPool2D):
            steps.append(KernelStep(layer, index))
        elif getattr(layer, "augments", False):
            steps.append(AugmentStep(layer, index))
        elif type(layer) is BatchNormalization:
            leaky = None
            if relu is None and fusable_leaky(follows):
                leaky = layers[follows]
                follows += 1
            steps.append(BatchNormStep(layer, index, relu, after_relu=index > 0 and type(layers[index - 1]) is ReLU,
                                       leaky=leaky))
        elif type(layer) is Dropout:
            steps.append(DropoutStep(layer, index))
        else:
            steps.append(LayerStep(layer, index))
        index = follows
    if not inference:  # training: a BatchNormalization's sums taken in the output pass of the convolution before it
        for before, after in zip(steps, steps[1:]):
            if type(before) is ConvStep and type(after) is BatchNormStep:
                before.statistics_for, after.sums_from_conv = after, True
    return steps


def describe(steps, images, threads):
    """The plan as text: one line per step, for a call on ``images`` images split over ``threads`` threads."""
    per_thread = max(stop - start for start, stop in split(images, threads))
    rows = []
    for step in steps:
        what, why = step.describe(per_thread)
        rows.append((" + ".join(layer.name for layer in step.layers), what, why))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{names:<{widths[0]}}  {what:<{widths[1]}}  ({why})" for names, what, why in rows)

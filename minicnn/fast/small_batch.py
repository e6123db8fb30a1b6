"""Predictions on a few images (a single image's latency): one thread, no splitting, the dense tail without BLAS.

A prediction on one image computes little (the MLP: 0.2 M multiply-adds) and the fast engine's machinery around
it cost about as much as the work: resolving the thread count, splitting the batch, a call through the thread
runner, holding BLAS to one thread (its threads would wake for a 784 x 256 product), a Python step per layer and
NumPy's Softmax on 10 numbers. For at most ``MAX_IMAGES`` images (which are never split over threads) the engine
(``FastEngine.outputs``) instead runs on the calling thread, with the first thread's Workspace (nothing allocated
after the first call), and for at most ``TAIL_MAX_IMAGES`` (one image):

1. runs the steps before the model's **dense tail** as ever (BLAS held to one thread only if there are any);
2. runs the dense tail, the trailing Flatten / Dense [+ ReLU or LeakyReLU] / Dropout (the identity at inference) /
   Softmax layers, with minicnn/kernels/small_batch.py: ONE Numba call for the whole tail (each Dense's
   product, bias and activation in one pass over its weights, then the Softmax), no BLAS. An MLP never touches BLAS's
   thread setting then. The call passes the model's flat parameter buffer (every kernel and bias is a view into it)
   and a table of where each layer's pieces lie, made once and checked at each call (made again when a kernel or
   bias is another array than the one it was made from): Numba checks its arguments' types at every call, and a
   tuple of arrays per layer cost 11 us of a 58 us prediction.

The numbers are the layers' (tests/test_small_batch.py compares this path with the reference engine);
``Sequential.plan()`` names the tail. Measurements: docs/performance.md ("Single-image latency").
"""
from __future__ import annotations

import numpy as np

from minicnn.fast.parallel import MIN_IMAGES_PER_THREAD
from minicnn.kernels.small_batch import LEAKY_RELU, NO_ACTIVATION, OUTPUT_AT, RELU, UNITS
from minicnn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, ReLU, Softmax

MAX_IMAGES = 2 * MIN_IMAGES_PER_THREAD - 1  # (the batch would not be split over threads anyway)
TAIL_MAX_IMAGES = 1  # the dense tail's kernels for one image; from 2 images on BLAS's products win (measured)
TAIL_LAYERS = (Flatten, Dense, ReLU, LeakyReLU, Dropout, Softmax)


def _operations(layers):
    """The tail's layers as operations: ("flatten",), ("dense", layer, activation, slope), ("softmax",); None if
    they are not a dense tail (a ReLU not after a Dense, a Softmax before the end, no Dense at all)."""
    operations = []
    for number, layer in enumerate(layers):
        kind = type(layer)
        if kind is Flatten:
            operations.append(("flatten",))
        elif kind is Dense:
            operations.append(("dense", layer, NO_ACTIVATION, 0.0))
        elif kind in (ReLU, LeakyReLU):
            if not operations or operations[-1][0] != "dense" or operations[-1][2] != NO_ACTIVATION:
                return None
            slope = float(layer.negative_slope) if kind is LeakyReLU else 0.0
            operations[-1] = ("dense", operations[-1][1], RELU if kind is ReLU else LEAKY_RELU, slope)
        elif kind is Softmax:
            if number != len(layers) - 1:
                return None
            operations.append(("softmax",))
        # Dropout: the identity at inference
    return operations if any(operation[0] == "dense" for operation in operations) else None


def multiply_adds(layers):
    """The multiply-adds of one image through the Conv2D and Dense layers (what BLAS's products would compute)."""
    total = 0
    for layer in layers:
        if isinstance(layer, Conv2D):
            total += layer.output_shape[0] * layer.output_shape[1] * layer.kernel.value.size
        elif isinstance(layer, Dense):
            total += layer.kernel.value.size
    return total


class SmallBatchPath:
    """``steps`` (the plan's inference steps) cut into the steps run as ever (``head``) and the dense tail."""

    def __init__(self, steps):
        start = len(steps)
        while start > 0 and all(type(layer) in TAIL_LAYERS for layer in steps[start - 1].layers):
            start -= 1
        while start < len(steps):  # the longest run of tail steps that is a dense tail
            layers = [layer for step in steps[start:] for layer in step.layers]
            self.operations = _operations(layers)
            if self.operations is not None:
                break
            start += 1
        else:
            self.operations = None
        self.head = steps[:start]
        self._table = None  # (flat parameter buffer, layout, slopes, softmax?) and the first kernel it was made from
        self._made_from = None
        self._first_dense = next((operation[1] for operation in self.operations or () if operation[0] == "dense"),
                                 None)
        self._buffers = {}  # (id of the workspace, images, dtype) -> (scratch buffer, probabilities) in it
        self.tail_layers = [layer for step in steps[start:] for layer in step.layers]
        self.multiply_adds = multiply_adds([layer for step in steps for layer in step.layers])

    def table(self):
        """(flat parameter buffer, layout, slopes, softmax?) of the tail's Dense layers (kernels/small_batch.py);
        None if there is no dense tail or its weights are not views into one buffer (then the steps run as ever).
        Made again when the first kernel is another array than the one it was made from: the model moves every
        parameter into a new flat buffer at once (Sequential._pack_parameters), never one alone."""
        if self._first_dense is None:
            return None
        if self._first_dense.kernel.value is self._made_from:
            return self._table
        denses = [operation for operation in self.operations if operation[0] == "dense"]
        values = [array for _, dense, _, _ in denses for array in (dense.kernel.value, dense.bias.value)]
        parameters = values[0].base
        if parameters is None or not all(array.base is parameters and array.flags.c_contiguous for array in values):
            return None
        rows, output_at = [], 0
        for (_, dense, activation, _), kernel, bias in zip(denses, values[0::2], values[1::2]):
            rows.append(((kernel.ctypes.data - parameters.ctypes.data) // kernel.itemsize, *kernel.shape,
                         (bias.ctypes.data - parameters.ctypes.data) // bias.itemsize, activation, output_at))
            output_at += dense.units  # (for one image; run_tail scales it for more)
        slopes = np.array([slope for *_, slope in denses], dtype=np.float64)
        self._table = (parameters, np.array(rows, dtype=np.int64), slopes, self.operations[-1][0] == "softmax")
        self._made_from = values[0]
        return self._table

    def run_tail(self, x, table, kernels, workspace, logits_only):
        """The dense tail on x (the head's output), in one kernel call (``table``: what ``table()`` returned); the
        result lives in the workspace (copy it)."""
        parameters, layout, slopes, softmax = table
        x = np.ascontiguousarray(x.reshape(len(x), -1))  # (Flatten: a reshape; Dropout: the identity)
        if len(x) != 1:  # (the table places one image's outputs)
            layout = layout.copy()
            layout[:, OUTPUT_AT] *= len(x)
        buffers = self._buffers.get((id(workspace), len(x), x.dtype))
        if buffers is None:
            units = int(layout[-1, UNITS])
            scratch = workspace.get((self, "scratch"), (int(layout[-1, OUTPUT_AT]) + len(x) * units,), x.dtype)
            probabilities = workspace.get((self, "softmax"), (len(x), units), x.dtype)
            buffers = self._buffers[id(workspace), len(x), x.dtype] = scratch, probabilities
        scratch, probabilities = buffers
        return kernels.dense_tail_forward_into(x, parameters, layout, slopes, scratch, softmax and not logits_only,
                                               probabilities)

    def describe(self, blas=""):
        """One line for the plan (``blas``: what BLAS's threads do meanwhile, in words)."""
        text = f"at inference on at most {MAX_IMAGES} images: the same steps on the calling thread{blas}"
        if self.operations is None:
            return text
        names = " + ".join(layer.name for layer in self.tail_layers)
        return (f"{text}; on {TAIL_MAX_IMAGES} image, {names}: one Numba kernel call (each Dense with its bias and "
                "activation, then the Softmax), no BLAS (fast/small_batch.py)")

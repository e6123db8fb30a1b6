"""Dropout: in training, zero each input with probability ``rate`` and scale the others up; at inference, nothing.

Shapes: x and y have any shape, the same one. With keep = 1 - rate and a mask m of independent draws,
m = 1 with probability keep (inverted dropout, as Keras: the expected output equals the input, so inference
needs no rescaling)::

    training:   y  = x / keep   where m = 1,   0 where m = 0
                dx = dy / keep  where m = 1,   0 where m = 0
    inference:  y  = x,  dx = dy                (also in training when rate = 0)

The mask is reproducible and position-independent: element i of the batch (its index in C order) in call
number k of the layer keeps its input when a counter-based hash of (seed, k, i) says so::

    key  = mix(seed * G + k)             mix: SplitMix64's finalizer, G = 0x9E3779B97F4A7C15 (uint64, wrapping)
    bits = mix(key + (i + 1) * G) >> 40   24 random bits: u = bits / 2**24 is uniform in [0, 1)
    m    = [u >= rate]  =  [bits >= ceil(rate * 2**24)]

So the same seed gives the same masks on every engine, every dtype and every split of the batch over threads
(a thread computing rows 64..127 computes exactly those elements' bits: the fast engine's Numba kernel,
minicnn/kernels/dropout.py, draws them in parallel with the reference). ``seed=None`` takes a seed from the model's
seed when the model is built. ``calls`` (the counter k) is part of the layer's training state
(``snapshot``/``restore``).
The masks are not Keras's (Keras draws them with its own random generator): compare with Keras at rate 0, or
with the same mask on both sides.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.layers.base import Layer

GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment: 2**64 / the golden ratio


def mix(z):
    """SplitMix64's finalizer on a uint64 array (wrapping arithmetic): a bijection that scrambles every bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_threshold(rate):
    """Keep an element when its 24 random bits are >= this: ceil(rate * 2**24) (exact: u >= rate)."""
    return math.ceil(rate * 2 ** 24)


def dropout_key(seed, call):
    """The uint64 key of call number ``call`` of a dropout layer seeded ``seed`` (a 1-element array: NumPy warns
    about wrapping scalar arithmetic, not array arithmetic)."""
    return mix(np.array([seed], dtype=np.uint64) * np.uint64(GOLDEN) + np.uint64(call))


def dropout_mask(shape, rate, seed, call, offset=0):
    """The keep mask (bool, ``shape``) of call number ``call`` of a dropout layer with this seed; ``offset``: the
    index of the first element in the whole batch (a thread's rows). See the module docstring."""
    index = np.arange(offset + 1, offset + 1 + math.prod(shape), dtype=np.uint64)
    bits = mix(dropout_key(seed, call) + index * np.uint64(GOLDEN)) >> np.uint64(40)
    return (bits >= np.uint64(dropout_threshold(rate))).reshape(shape)


def dropout_forward(x, rate, keep_mask):
    """x (any shape), keep_mask (bool, same shape) -> y = where(mask, x / (1 - rate), 0), cache = the mask."""
    # BEGIN SOLUTION task=dropout.forward
    keep = x.dtype.type(1.0 - rate)
    return np.where(keep_mask, x / keep, x.dtype.type(0)), keep_mask
    # END SOLUTION


def dropout_backward(dy, cache, rate):
    """dy -> dx = where(mask, dy / (1 - rate), 0)."""
    # BEGIN SOLUTION task=dropout.backward
    keep = dy.dtype.type(1.0 - rate)
    return np.where(cache, dy / keep, dy.dtype.type(0))
    # END SOLUTION


class Dropout(Layer):
    """``Dropout(rate, seed=None)``, as ``keras.layers.Dropout``: active only in training (``fit``,
    ``train_step``), the identity in ``evaluate``/``predict``."""

    default_name = "dropout"
    needs_whole_batch = True  # one mask per call for the whole batch (the fast engine's DropoutStep draws a thread's rows of it)

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not math.isfinite(rate) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1) (the fraction of inputs dropped in training), "
                             f"got {rate!r}. rate=0 keeps everything; rate=1 would drop everything.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"Dropout seed must be a non-negative integer or None, got {seed!r}")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self.calls = 0

    def build(self, input_shape, dtype, rng):
        # A seed from the model's random generator, drawn whether needed or not: the layers after this one then
        # get the same initial weights with seed=None, with a seed, and when rebuilt from a saved config.
        drawn = int((rng if rng is not None else np.random.default_rng()).integers(2 ** 31))
        if self.seed is None:
            self.seed = drawn
        return super().build(input_shape, dtype, rng)

    def forward(self, x, training=False):
        # BEGIN SOLUTION task=dropout.forward
        if not training or self.rate == 0:
            return x, None
        mask = dropout_mask(x.shape, self.rate, self.seed, self.calls)
        self.calls += 1
        return dropout_forward(x, self.rate, mask)
        # END SOLUTION

    def backward(self, dy, cache, grads, need_input_grad=True):
        if not need_input_grad:
            return None
        return dy if cache is None else dropout_backward(dy, cache, self.rate)

    def snapshot(self):
        return self.calls

    def restore(self, snapshot):
        self.calls = snapshot

    def get_config(self):
        return {"name": self.name, "rate": self.rate, "seed": self.seed}

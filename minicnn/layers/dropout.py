"""Dropout: in training, zero each input with probability ``rate`` and scale the others up; at inference, nothing.

Shapes: x and y have any shape, the same one. With keep = 1 - rate and a mask m of independent draws,
m = 1 with probability keep (inverted dropout, as Keras: the expected output equals the input, so inference
needs no rescaling)::

    training:   y  = x / keep   where m = 1,   0 where m = 0
                dx = dy / keep  where m = 1,   0 where m = 0
    inference:  y  = x,  dx = dy                (also in training when rate = 0)

The mask is reproducible: call number k of the layer in training draws it from
``numpy.random.default_rng((seed, k))`` (uniform float32 numbers u, m = [u >= rate]), so the same seed gives the
same masks on every engine and every dtype. ``seed=None`` takes a seed from the model's seed when the model is
built. ``calls`` (the counter k) is part of the layer's training state (``snapshot``/``restore``).
The masks are not Keras's (Keras draws them with its own random generator): compare with Keras at rate 0, or
with the same mask on both sides.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.layers.base import Layer


def dropout_mask(shape, rate, seed, call):
    """The keep mask (bool, ``shape``) of call number ``call`` of a dropout layer with this seed."""
    return np.random.default_rng((seed, call)).random(shape, dtype=np.float32) >= np.float32(rate)


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
    needs_whole_batch = True  # one mask per call, drawn for the whole batch

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

"""Weight initializers, computed as Keras computes them.

fan_in / fan_out of a kernel: Dense (in, out) -> in, out; Conv2D (KH, KW, C, F) -> KH*KW*C, KH*KW*F.

* ``glorot_uniform`` (Keras's default): U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
* ``he_uniform``: U(-limit, limit), limit = sqrt(6 / fan_in)
* ``he_normal``: normal with stddev sqrt(2 / fan_in), truncated at 2 stddev (redrawn), as Keras
* ``zeros``: for biases
"""
from __future__ import annotations

import numpy as np

INITIALIZERS = ("glorot_uniform", "he_uniform", "he_normal", "zeros")


def fans(shape):
    """(fan_in, fan_out) of a Dense (in, out) or Conv2D (KH, KW, C, F) kernel; a bias (n,) counts n both ways
    (as Keras's compute_fans), so ``bias_initializer="glorot_uniform"`` works as there."""
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = int(np.prod(shape[:-2]))
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def initialize(name, shape, dtype, rng):
    """An array of the given shape and dtype drawn with the named initializer from the Generator ``rng``."""
    if name == "zeros":
        return np.zeros(shape, dtype=dtype)
    fan_in, fan_out = fans(shape)
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
    if name == "he_uniform":
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
    if name == "he_normal":
        stddev = np.sqrt(2.0 / fan_in)
        values = rng.standard_normal(size=shape)
        outside = np.abs(values) > 2
        while outside.any():
            values[outside] = rng.standard_normal(size=int(outside.sum()))
            outside = np.abs(values) > 2
        return (values * stddev).astype(dtype)
    raise ValueError(f"unknown initializer {name!r}; choose one of {INITIALIZERS}")

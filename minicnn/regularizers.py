"""Weight penalties, as Keras writes them: ``Conv2D(..., kernel_regularizer=l2(0.01), bias_regularizer=l1(0.01))``.

A regularizer adds a penalty on a parameter w to the training loss, and its gradient to w's gradient::

    l1(f)          penalty = f * sum(|w|)                  gradient = f * sign(w)      (+f at w = 0, as Keras on
                                                                                        JAX: d|w|/dw there is 1)
    l2(f)          penalty = f * sum(w ** 2)               gradient = 2 f w            (Keras's l2: no 1/2)
    l1_l2(a, b)    penalty = a * sum(|w|) + b * sum(w ** 2)

Defaults as Keras: ``l1()`` and ``l2()`` use 0.01, ``l1_l2()`` uses 0 and 0. By name, ``"l1"`` and ``"l2"``
mean ``l1()`` and ``l2()`` (Keras accepts those two names). The penalty counts in the reported training loss
(and in ``evaluate``'s loss, as Keras's ``model.losses``); the model adds penalties and their gradients after the
engine's gradients, the same way on every engine (``Sequential.regularization_penalty``).
"""
from __future__ import annotations

import math

import numpy as np


def _factor(value, name, where):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: the factor {name} must be a non-negative number (like 0.01), got {value!r}")
    return float(value)


class Regularizer:
    """A penalty on one parameter: ``regularizer(w)`` is the penalty, ``regularizer.gradient(w)`` its gradient."""

    def __call__(self, w):
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__.lower()}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class L1L2(Regularizer):
    """``l1_l2(l1=0.0, l2=0.0)``: l1 * sum(|w|) + l2 * sum(w ** 2)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", type(self).__name__)
        self.l2 = _factor(l2, "l2", type(self).__name__)

    def __call__(self, w):
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * np.abs(w).sum()
        if self.l2:
            penalty += self.l2 * np.square(w).sum()
        return penalty

    def gradient(self, w):
        gradient = np.zeros_like(w)
        if self.l1:
            gradient += np.where(w >= 0, w.dtype.type(self.l1), w.dtype.type(-self.l1))
        if self.l2:
            gradient += w.dtype.type(2 * self.l2) * w
        return gradient

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1(l1=0.01)``: l1 * sum(|w|)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2(l2=0.01)``: l2 * sum(w ** 2), Keras's form (no factor 1/2)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras's names
REGULARIZER_CLASSES = {cls.__name__: cls for cls in (L1, L2, L1L2)}
BY_NAME = {"l1": L1, "l2": L2}


def get(identifier, where="regularizer"):
    """None, a Regularizer, "l1"/"l2", or a saved config {"class": "L2", "config": {"l2": 0.01}} -> a Regularizer
    (or None)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in BY_NAME:
        return BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class") in REGULARIZER_CLASSES:
        return REGULARIZER_CLASSES[identifier["class"]](**identifier.get("config", {}))
    raise ValueError(f"{where}: unknown regularizer {identifier!r}; use minicnn.regularizers.l1(0.01), l2(0.01), "
                     "l1_l2(l1=0.01, l2=0.01), or the names 'l1' / 'l2'")


def serialize(regularizer):
    """The JSON-able config of a regularizer (for model files), or None."""
    if regularizer is None:
        return None
    return {"class": type(regularizer).__name__, "config": regularizer.get_config()}

"""What optimizers share: a learning rate, a step counter, and state arrays named in ``state_names``."""
from __future__ import annotations

import math
import numbers

import numpy as np

from minicnn.kernels.jit import KernelTable

NUMPY_UPDATES = KernelTable("numpy")


def hyperparameter(value, name, low, high, low_open=False, high_open=False):
    """``value`` as a float, checked: a finite real number in [low, high] (``low_open``/``high_open``: that end
    excluded). Raises ValueError naming the hyperparameter, so ``Adam(learning_rate=inf)`` fails at once instead
    of turning every weight into NaN at the first update."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if not math.isfinite(value) or too_low or too_high:
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


class Optimizer:
    state_names: tuple = ()

    def __init__(self, learning_rate):
        self.learning_rate = hyperparameter(learning_rate, "learning_rate", 0, 1e6, low_open=True)
        self.iterations = 0

    def build(self, flat_params):
        """Allocate zeroed state shaped like the model's flat parameter buffer."""
        for name in self.state_names:
            setattr(self, name, np.zeros_like(flat_params))

    def apply(self, flat_params, flat_grads, kernels=NUMPY_UPDATES):
        """Update flat_params in place from flat_grads, then count the step. ``kernels``: the engine's kernel
        table (its Numba kernels, or the NumPy updates in minicnn/kernels/optim.py)."""
        raise NotImplementedError

    def get_config(self):
        return {"learning_rate": self.learning_rate}

    def state_arrays(self):
        return [getattr(self, name) for name in self.state_names]

    def set_state(self, iterations, arrays):
        self.iterations = int(iterations)
        for name, array in zip(self.state_names, arrays):
            getattr(self, name)[...] = array

"""What optimizers share: a learning rate, a step counter, and state arrays named in ``state_names``."""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import KernelTable

NUMPY_UPDATES = KernelTable("numpy")


class Optimizer:
    state_names: tuple = ()

    def __init__(self, learning_rate):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
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

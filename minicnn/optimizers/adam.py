"""Adam, exactly as Keras 3 computes it. The update itself is ``adam_update`` in minicnn/kernels/optim.py
(a NumPy function and its Numba kernel):

    t     = iteration + 1
    alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m     = beta_1 * m + (1 - beta_1) * g           (running mean of gradients)
    v     = beta_2 * v + (1 - beta_2) * g**2        (running mean of squared gradients)
    p     = p - alpha * m / (sqrt(v) + epsilon)

Defaults are Keras's: learning_rate 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7.
"""
from __future__ import annotations

import math

from minicnn.optimizers.base import NUMPY_UPDATES, Optimizer, hyperparameter


class Adam(Optimizer):
    state_names = ("m", "v")

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1 = hyperparameter(beta_1, "beta_1", 0, 1, high_open=True)
        self.beta_2 = hyperparameter(beta_2, "beta_2", 0, 1, high_open=True)
        self.epsilon = hyperparameter(epsilon, "epsilon", 0, 1e6, low_open=True)
        self.m = None
        self.v = None

    def apply(self, flat_params, flat_grads, kernels=NUMPY_UPDATES):
        # BEGIN SOLUTION task=adam.step_size
        step = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        # END SOLUTION
        as_dtype = flat_params.dtype.type  # keep float32 math in float32
        kernels.adam_update(flat_params, flat_grads, self.m, self.v, as_dtype(alpha), as_dtype(1 - self.beta_1),
                    as_dtype(1 - self.beta_2), as_dtype(self.epsilon))
        self.iterations = step

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}

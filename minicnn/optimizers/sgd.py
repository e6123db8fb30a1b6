"""Stochastic gradient descent with optional (Nesterov) momentum, as Keras 3:

    velocity = momentum * velocity - learning_rate * g
    p        = p + velocity                                   (or, nesterov: p + momentum*velocity - lr*g)

With momentum 0 this is plain SGD: p = p - learning_rate * g.
"""
from __future__ import annotations

from minicnn.optimizers.base import NUMPY_UPDATES, Optimizer, hyperparameter


class SGD(Optimizer):
    state_names = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        self.momentum = hyperparameter(momentum, "momentum", 0, 1, high_open=True)
        self.nesterov = bool(nesterov)
        self.velocity = None

    def apply(self, flat_params, flat_grads, kernels=NUMPY_UPDATES):
        as_dtype = flat_params.dtype.type
        kernels.sgd_update(flat_params, flat_grads, self.velocity, as_dtype(self.learning_rate),
                           as_dtype(self.momentum), self.nesterov)
        self.iterations += 1

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}

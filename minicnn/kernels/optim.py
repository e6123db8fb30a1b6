"""The optimizer updates, each over one flat buffer that holds every parameter of the model.

Adam, exactly as Keras 3 computes it (the "epsilon-hat" form: bias correction folded into the step size)::

    t      = iteration + 1
    alpha  = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m     += (g - m) * (1 - beta_1)              same as m = beta_1*m + (1-beta_1)*g
    v     += (g*g - v) * (1 - beta_2)            same as v = beta_2*v + (1-beta_2)*g*g
    p     -= alpha * m / (sqrt(v) + epsilon)

(PyTorch instead adds epsilon to the bias-corrected sqrt(v): the two differ slightly.)

SGD with momentum, as Keras 3::

    velocity = momentum * velocity - learning_rate * g
    p       += velocity                                             (plain)
    p       += momentum * velocity - learning_rate * g              (nesterov)

The scalar coefficients arrive already cast to the buffer's dtype, so float32 math stays float32. The Numba
kernels use ``error_model="numpy"``: Numba's default ("python") checks every division for a zero divisor, which
keeps the loop from being vectorised (Adam over 81k parameters: about 5x slower).
"""
from __future__ import annotations

import numpy as np
from minicnn.kernels.jit import njit

from minicnn.backend import pick


def adam_update_numpy(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    m += (grads - m) * one_minus_beta_1
    v += (grads * grads - v) * one_minus_beta_2
    params -= (m * alpha) / (np.sqrt(v) + epsilon)


@njit(cache=True, nogil=True, error_model="numpy")
def adam_update_numba(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    for i in range(params.size):
        g = grads[i]
        m[i] += (g - m[i]) * one_minus_beta_1
        v[i] += (g * g - v[i]) * one_minus_beta_2
        params[i] -= (m[i] * alpha) / (np.sqrt(v[i]) + epsilon)


def sgd_update_numpy(params, grads, velocity, learning_rate, momentum, nesterov):
    velocity *= momentum
    velocity -= learning_rate * grads
    if nesterov:
        params += momentum * velocity - learning_rate * grads
    else:
        params += velocity


@njit(cache=True, nogil=True, error_model="numpy")
def sgd_update_numba(params, grads, velocity, learning_rate, momentum, nesterov):
    for i in range(params.size):
        velocity[i] = momentum * velocity[i] - learning_rate * grads[i]
        if nesterov:
            params[i] += momentum * velocity[i] - learning_rate * grads[i]
        else:
            params[i] += velocity[i]


def adam_update(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One Adam step over flat 1-D buffers, in place. See the module docstring."""
    pick(adam_update_numpy, adam_update_numba)(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2,
                                               epsilon)


def sgd_update(params, grads, velocity, learning_rate, momentum, nesterov):
    """One SGD (momentum) step over flat 1-D buffers, in place. See the module docstring."""
    pick(sgd_update_numpy, sgd_update_numba)(params, grads, velocity, learning_rate, momentum, nesterov)

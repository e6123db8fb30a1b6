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

**Subnormal numbers are flushed to zero** in the optimizer state (m, v, velocity): where a gradient stays 0, m
shrinks every step until it is subnormal, and the CPU computes with subnormals 10-100 times slower. Flushing
changes an update by less than 1e-38 * learning_rate / epsilon (measurements: docs/performance.md).

The scalar coefficients arrive already cast to the buffer's dtype, so float32 math stays float32. The Numba
kernels use ``error_model="numpy"``: Numba's default ("python") checks every division for a zero divisor, which
keeps the loop from being vectorised (Adam over 81k parameters: about 5x slower).
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.jit import njit


def _flush_subnormals(state):
    """state[...] = 0 where |state| is below the dtype's smallest normal number (see the module docstring)."""
    state[np.abs(state) < np.finfo(state.dtype).tiny] = 0


def adam_update_numpy(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    # BEGIN SOLUTION task=adam.update
    m += (grads - m) * one_minus_beta_1
    v += (grads * grads - v) * one_minus_beta_2
    _flush_subnormals(m)
    _flush_subnormals(v)
    params -= (m * alpha) / (np.sqrt(v) + epsilon)
    # END SOLUTION


@njit(cache=True, nogil=True, error_model="numpy", twin=adam_update_numpy)
def adam_update_numba(params, grads, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    zero = params.dtype.type(0)
    tiny = params.dtype.type(1.1754943508222875e-38 if params.itemsize == 4 else 2.2250738585072014e-308)
    for i in range(params.size):
        g = grads[i]
        m_i = m[i] + (g - m[i]) * one_minus_beta_1
        v_i = v[i] + (g * g - v[i]) * one_minus_beta_2
        m_i = zero if abs(m_i) < tiny else m_i  # (subnormal: see the module docstring)
        v_i = zero if v_i < tiny else v_i
        m[i] = m_i
        v[i] = v_i
        params[i] -= (m_i * alpha) / (np.sqrt(v_i) + epsilon)


def sgd_update_numpy(params, grads, velocity, learning_rate, momentum, nesterov):
    velocity *= momentum
    velocity -= learning_rate * grads
    _flush_subnormals(velocity)
    if nesterov:
        params += momentum * velocity - learning_rate * grads
    else:
        params += velocity


@njit(cache=True, nogil=True, error_model="numpy", twin=sgd_update_numpy)
def sgd_update_numba(params, grads, velocity, learning_rate, momentum, nesterov):
    zero = params.dtype.type(0)
    tiny = params.dtype.type(1.1754943508222875e-38 if params.itemsize == 4 else 2.2250738585072014e-308)
    for i in range(params.size):
        velocity_i = momentum * velocity[i] - learning_rate * grads[i]
        velocity[i] = zero if abs(velocity_i) < tiny else velocity_i  # (subnormal: see the module docstring)
        if nesterov:
            params[i] += momentum * velocity[i] - learning_rate * grads[i]
        else:
            params[i] += velocity[i]

"""Numerical gradient checking: compare backprop's gradients with central finite differences, in float64.

For a scalar loss L and one entry theta of a tensor::

    numerical dL/dtheta = (L(theta + eps) - L(theta - eps)) / (2 eps)        error O(eps^2)

and per tensor we report ``relative error = |analytic - numerical| / (|analytic| + |numerical|)`` with |.|
the Euclidean norm over the checked entries. In float64 with eps = 1e-6 a correct layer gives about 1e-8 or
less; a wrong backward pass gives 1e-2 or more. Accuracy alone proves nothing: a broken backward pass can
still make a model "learn".

    from minicnn.gradcheck import check_layer, check_model
    check_layer(Conv2D(4, 3, strides=2, padding="same"), input_shape=(7, 7, 3))
    check_model(model, x[:4], y[:4])

A layer is checked on L = sum(R * layer(x)) with a fixed random R, so that every output matters.
Kinks (ReLU at 0, max-pool ties) have no derivative: random float64 inputs avoid them almost surely.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minicnn.losses import softmax_cross_entropy


@dataclass
class GradCheckResult:
    name: str
    shape: tuple
    relative_error: float
    entries_checked: int

    def __str__(self):
        return f"{self.name:<28} {str(self.shape):<18} checked {self.entries_checked:>6}   rel. error {self.relative_error:.2e}"


def relative_error(analytic, numerical):
    analytic, numerical = np.ravel(analytic), np.ravel(numerical)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numerical)
    return float(np.linalg.norm(analytic - numerical) / max(scale, 1e-12))


def _entries(size, max_entries, rng):
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, size=max_entries, replace=False))


def numerical_gradient(loss_fn, array, indices, epsilon):
    """Central differences of loss_fn() with respect to array.flat[indices] (array is perturbed in place)."""
    flat = array.reshape(-1)
    gradient = np.empty(len(indices))
    for position, index in enumerate(indices):
        original = flat[index]
        flat[index] = original + epsilon
        plus = loss_fn()
        flat[index] = original - epsilon
        minus = loss_fn()
        flat[index] = original
        gradient[position] = (plus - minus) / (2 * epsilon)
    return gradient


def _report(results, title, verbose):
    if verbose:
        print(title)
        for result in results:
            print("  " + str(result))
    return results


def check_layer(layer, input_shape, batch_size=2, seed=0, epsilon=1e-6, max_entries=None, verbose=True,
                x=None):
    """Check one (unbuilt) layer's input and parameter gradients in float64. Returns a list of results."""
    rng = np.random.default_rng(seed)
    if layer.dtype is None:
        layer.build(tuple(input_shape), np.float64, rng)
    if layer.dtype != np.float64:
        raise ValueError("gradient checks need a float64 layer: pass an unbuilt layer")
    if x is None:
        x = rng.standard_normal((batch_size, *layer.input_shape))
    x = np.array(x, dtype=np.float64)
    y, cache = layer.forward(x, True)
    projection = rng.standard_normal(y.shape)

    def loss():
        return float((projection * layer.forward(x, True)[0]).sum())

    grads = [np.zeros(p.shape) for p in layer.parameters()]
    dx = layer.backward(projection, cache, grads, need_input_grad=True)
    results = []
    indices = _entries(x.size, max_entries, rng)
    results.append(GradCheckResult("input", x.shape, relative_error(
        dx.reshape(-1)[indices], numerical_gradient(loss, x, indices, epsilon)), len(indices)))
    for parameter, grad in zip(layer.parameters(), grads):
        indices = _entries(parameter.size, max_entries, rng)
        numerical = numerical_gradient(loss, parameter.value, indices, epsilon)
        results.append(GradCheckResult(parameter.name, parameter.shape,
                                       relative_error(grad.reshape(-1)[indices], numerical), len(indices)))
    return _report(results, f"gradient check of {layer!r}", verbose)


def check_model(model, x, y, seed=0, epsilon=1e-6, max_entries=50, verbose=True):
    """Check every parameter gradient (and the input gradient) of a whole model on (x, y), in float64.

    A float32 model is copied to float64 first. ``max_entries`` random entries per tensor are checked
    (None checks all of them). Returns a list of results, one per tensor.
    """
    if model.dtype != np.float64:
        model = model.clone(dtype="float64")
    rng = np.random.default_rng(seed)
    x = model._prepare_inputs(x).copy()
    y = model._prepare_labels(y, len(x))

    def loss():
        logits = x
        for layer in model._logit_layers():
            logits, _ = layer.forward(logits, True)
        return softmax_cross_entropy(logits, y, 1.0)[0] / len(x)

    _, _, dx = model.loss_and_gradients(x, y, need_input_grad=True)
    results = []
    indices = _entries(x.size, max_entries, rng)
    results.append(GradCheckResult("input", x.shape, relative_error(
        dx.reshape(-1)[indices], numerical_gradient(loss, x, indices, epsilon)), len(indices)))
    for layer in model.layers:
        for parameter in layer.parameters():
            indices = _entries(parameter.size, max_entries, rng)
            numerical = numerical_gradient(loss, parameter.value, indices, epsilon)
            results.append(GradCheckResult(f"{layer.name}.{parameter.name}", parameter.shape,
                                           relative_error(parameter.grad.reshape(-1)[indices], numerical),
                                           len(indices)))
    return _report(results, f"gradient check of model {model.name!r}", verbose)

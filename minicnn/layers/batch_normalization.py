"""BatchNormalization: normalize each feature (channel) over the batch, then scale and shift it.

Shapes: x and y have the same shape, (N, F) after Dense or (N, H, W, C) after Conv2D (channels last). The
statistics are per feature f (the last axis), over the M = N (or N*H*W) values of that feature in the batch::

    gamma, beta, moving_mean, moving_variance    (F,)     gamma/beta trainable (scale=False / center=False
                                                          drop them); the moving statistics are not

Training (``fit``, ``train_step``): the batch's own statistics, the biased variance (divided by M, as Keras)::

    mean = sum(x) / M          var = sum((x - mean)**2) / M          inv = 1 / sqrt(var + epsilon)
    xhat = (x - mean) * inv    y = gamma * xhat + beta
    moving_mean     = moving_mean     * momentum + mean * (1 - momentum)        (Keras's rule, also the
    moving_variance = moving_variance * momentum + var  * (1 - momentum)         biased variance)

Inference (``evaluate``, ``predict``): the moving statistics instead, a fixed per-feature affine map::

    y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta

(computed as Keras does: s = gamma * inv, y = x * s + (beta - mean * s)).

Backward in training, with dy = dLoss/dy; mean and var depend on every x of the feature, hence the two sums::

    dbeta  = sum(dy)                 dgamma = sum(dy * xhat)
    dxhat  = dy * gamma
    dx     = inv / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
           = gamma * inv * (dy - dbeta / M - xhat * dgamma / M)          (the same, as computed)

The arrays are seen as (M, F) matrices (``x.reshape(-1, F)``, channels last) so that every sum is over rows.

Backward at inference (the statistics are constants): dx = dy * gamma * inv.

A batch of one sample in training is an error. After Dense, every feature then equals its own mean: xhat = 0,
y = beta whatever the input, and no gradient reaches the layers before. After Conv2D the statistics would be those
of a single image, and the moving statistics would learn from that: refused too (Keras computes it silently;
PyTorch refuses only the first case).
"""
from __future__ import annotations

import numpy as np

from minicnn.errors import ShapeError
from minicnn.layers.base import Layer, Parameter


def batch_normalization_forward(x, gamma, beta, mean, variance, epsilon):
    """x (N, ..., F) normalized with the given per-feature mean and variance (F,) -> y, cache.
    gamma/beta None mean 1/0 (scale=False/center=False). As Keras: s = gamma * inv, y = x * s + (beta - mean * s)."""
    inv = 1 / np.sqrt(variance + x.dtype.type(epsilon))
    scale = inv * gamma if gamma is not None else inv
    shift = -mean * scale
    if beta is not None:
        shift = shift + beta
    y = x * scale
    y += shift
    return y, (x, mean, inv, gamma)


def batch_statistics(x):
    """The per-feature mean and biased variance (F,) of x (N, ..., F), over all axes but the last."""
    rows = x.reshape(-1, x.shape[-1])              # (M, F)
    mean = rows.mean(axis=0)
    centered = rows - mean
    return mean, np.einsum("ij,ij->j", centered, centered) / x.dtype.type(len(rows))


def batch_normalization_backward(dy, cache, training, need_input_grad=True):
    """dy (N, ..., F) -> dx or None, dgamma (F,), dbeta (F,). ``training``: the statistics were the batch's (dx
    then goes through them too), else constants."""
    # BEGIN SOLUTION task=batch_normalization.backward
    x, mean, inv, gamma = cache
    features = x.shape[-1]
    rows, dy_rows = x.reshape(-1, features), dy.reshape(-1, features)     # (M, F)
    xhat = rows - mean
    xhat *= inv
    dbeta = dy_rows.sum(axis=0)
    dgamma = np.einsum("ij,ij->j", dy_rows, xhat)
    if not need_input_grad:
        return None, dgamma, dbeta
    scale = gamma * inv if gamma is not None else inv
    if not training:
        return dy * scale, dgamma, dbeta
    count = dy.dtype.type(len(rows))
    dx = xhat
    dx *= -dgamma / count                          # - xhat * dgamma / M
    dx += dy_rows                                  # + dy
    dx -= dbeta / count                            # - dbeta / M
    dx *= scale                                    # all times gamma * inv
    return dx.reshape(x.shape), dgamma, dbeta
    # END SOLUTION


class BatchNormalization(Layer):
    """``BatchNormalization(momentum=0.99, epsilon=1e-3, center=True, scale=True)``, as
    ``keras.layers.BatchNormalization`` (axis=-1: the channels of NHWC images, the features after Dense)."""

    default_name = "batch_normalization"
    needs_whole_batch = True  # the whole batch's statistics (the fast engine's BatchNormStep splits it and adds them up)

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None):
        super().__init__(name)
        if not 0 <= float(momentum) <= 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        if not float(epsilon) > 0:
            raise ValueError(f"BatchNormalization epsilon must be positive, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def parameters(self):
        return [p for p in (self.gamma if self.scale else None, self.beta if self.center else None) if p is not None]

    def state(self):
        return [self.moving_mean, self.moving_variance]

    def build(self, input_shape, dtype, rng):
        output_shape = super().build(input_shape, dtype, rng)
        if len(self.input_shape) not in (1, 3):
            raise ShapeError(f"{self.name or 'BatchNormalization'} expects (features,) or (height, width, channels), "
                             f"got {self.input_shape}")
        features = self.input_shape[-1]
        self.gamma = Parameter.create("gamma", np.ones(features, dtype=self.dtype)) if self.scale else None
        self.beta = Parameter.create("beta", np.zeros(features, dtype=self.dtype)) if self.center else None
        self.moving_mean = Parameter("moving_mean", np.zeros(features, dtype=self.dtype), None)
        self.moving_variance = Parameter("moving_variance", np.ones(features, dtype=self.dtype), None)
        return output_shape

    def forward(self, x, training=False):
        gamma = self.gamma.value if self.scale else None
        beta = self.beta.value if self.center else None
        if not training:
            y, cache = batch_normalization_forward(x, gamma, beta, self.moving_mean.value,
                                                   self.moving_variance.value, self.epsilon)
            return y, (False, cache)
        self.check_training_batch(len(x))
        mean, variance = batch_statistics(x)
        momentum = x.dtype.type(self.momentum)
        self.moving_mean.value[...] = self.moving_mean.value * momentum + mean * (1 - momentum)
        self.moving_variance.value[...] = self.moving_variance.value * momentum + variance * (1 - momentum)
        y, cache = batch_normalization_forward(x, gamma, beta, mean, variance, self.epsilon)
        return y, (True, cache)

    def check_training_batch(self, size):
        """Refuse a training batch of one sample (the fast engine calls this too, with the whole batch's size)."""
        if size == 1:
            raise ShapeError(
                f"{self.name or 'BatchNormalization'} got a training batch of one sample: batch statistics of one "
                "sample mean nothing (after Dense each feature is its own mean, so the output would be beta whatever "
                "the input and nothing before it would learn). Train with "
                "batches of at least 2 (with fit, choose a batch_size that does not leave a last batch of one: "
                "the training set size modulo batch_size must not be 1).")

    def backward(self, dy, cache, grads, need_input_grad=True):
        training, cache = cache
        dx, dgamma, dbeta = batch_normalization_backward(dy, cache, training, need_input_grad)
        position = 0
        if self.scale:
            grads[0][...] = dgamma
            position = 1
        if self.center:
            grads[position][...] = dbeta
        return dx

    def get_config(self):
        return {"name": self.name, "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}

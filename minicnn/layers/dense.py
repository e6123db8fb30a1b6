"""Dense: a fully connected layer.

Shapes::

    x       (N, D_in)
    kernel  (D_in, D_out)     (Keras's layout)
    bias    (D_out,)
    y       (N, D_out)        y = x @ kernel + bias

Backward, with dy = dLoss/dy (N, D_out)::

    dkernel = x.T @ dy        (D_in, D_out)   each weight's gradient sums input * output-gradient over the batch
    dbias   = dy.sum(axis=0)  (D_out,)
    dx      = dy @ kernel.T   (N, D_in)
"""
from __future__ import annotations

from minicnn import regularizers
from minicnn.errors import ShapeError
from minicnn.initializers import initialize
from minicnn.layers.base import Layer, Parameter, regularizer_config


def dense_forward(x, kernel, bias):
    """x (N, D_in), kernel (D_in, D_out), bias (D_out,) -> y (N, D_out), cache."""
    # BEGIN SOLUTION task=dense.forward
    y = x @ kernel
    y += bias
    return y, (x, kernel)
    # END SOLUTION


def dense_backward(dy, cache, need_input_grad=True):
    """dy (N, D_out) -> dx (N, D_in) or None, dkernel (D_in, D_out), dbias (D_out,)."""
    x, kernel = cache
    # BEGIN SOLUTION task=dense.backward
    dkernel = x.T @ dy
    dbias = dy.sum(axis=0)
    dx = dy @ kernel.T if need_input_grad else None
    return dx, dkernel, dbias
    # END SOLUTION


class Dense(Layer):
    """``Dense(units)``, as ``keras.layers.Dense``. ``activation="relu"``, ``"leaky_relu"`` or ``"softmax"`` is
    accepted for Keras habits: the model then puts a ReLU, LeakyReLU(0.2) or Softmax layer right after this one."""

    def __init__(self, units, activation=None, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, input_shape=None, name=None):
        super().__init__(name)
        if int(units) < 1:
            raise ValueError(f"Dense needs at least one unit, got units={units!r}")
        self.units = int(units)
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "Dense kernel_regularizer")
        self.bias_regularizer = regularizers.get(bias_regularizer, "Dense bias_regularizer")
        self.requested_input_shape = tuple(input_shape) if input_shape is not None else None
        self.kernel = None
        self.bias = None

    def parameters(self):
        return [self.kernel, self.bias]

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ShapeError(
                f"{self.name or 'Dense'} expects a flat input (features,), got {tuple(input_shape)}. "
                "Add layers.Flatten() before this Dense layer.")
        return (self.units,)

    def build(self, input_shape, dtype, rng):
        output_shape = super().build(input_shape, dtype, rng)
        self.kernel = Parameter.create(
            "kernel", initialize(self.kernel_initializer, (input_shape[0], self.units), self.dtype, rng))
        self.bias = Parameter.create("bias", initialize(self.bias_initializer, (self.units,), self.dtype, rng))
        self.kernel.regularizer, self.bias.regularizer = self.kernel_regularizer, self.bias_regularizer
        return output_shape

    def forward(self, x, training=False):
        return dense_forward(x, self.kernel.value, self.bias.value)

    def backward(self, dy, cache, grads, need_input_grad=True):
        dx, dkernel, dbias = dense_backward(dy, cache, need_input_grad)
        grads[0][...] = dkernel
        grads[1][...] = dbias
        return dx

    def get_config(self):
        return {"name": self.name, "units": self.units, "kernel_initializer": self.kernel_initializer,
                "bias_initializer": self.bias_initializer, **regularizer_config(self)}

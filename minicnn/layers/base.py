"""What every layer has in common: its parameters and the forward/backward contract.

A layer is used in three steps::

    output_shape = layer.build(input_shape, dtype, rng)   # shapes of ONE sample, no batch axis
    y, cache     = layer.forward(x, training)              # x has a batch axis first
    dx           = layer.backward(dy, cache, grads)        # dy = dLoss/dy, returns dLoss/dx

``forward`` keeps nothing on the layer: whatever backward needs travels in ``cache``. ``backward`` writes the
gradient of each parameter into ``grads`` (a list of arrays shaped like ``layer.parameters()``, normally the
parameters' own ``.grad`` arrays) and returns the input gradient (``None`` when ``need_input_grad`` is False,
which the first layer of a model uses to skip work nobody reads).

Non-trainable state (BatchNormalization's moving mean and variance) is ``layer.state()``: Parameters whose
``grad`` is None, which a training forward pass may update in place. The model saves, loads, counts and copies
them (``get_weights`` lists a layer's parameters, then its state: Keras's order). ``snapshot()``/``restore()``
save and put back everything a training forward pass changes on a layer (the state, a dropout layer's call
counter): gradient checks evaluate the same training step many times.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minicnn.errors import ShapeError


@dataclass(eq=False)
class Parameter:
    """One trainable array and its gradient (same shape). After ``Sequential.build`` both are views into the
    model's flat buffers, so assign with ``parameter.value[...] = new_values`` to keep them shared."""

    name: str
    value: np.ndarray
    grad: np.ndarray | None     # None for non-trainable state
    regularizer: object = None  # a minicnn.regularizers penalty on this parameter (kernel_regularizer=...)

    @classmethod
    def create(cls, name, value):
        return cls(name, value, np.zeros_like(value))

    @property
    def shape(self):
        return self.value.shape

    @property
    def size(self):
        return self.value.size


class Layer:
    """Base class. Subclasses set ``self.name`` via ``__init__(name=...)`` and override build/forward/backward."""

    needs_whole_batch = False  # True: training must see the whole batch in one call (no split over threads)

    def __init__(self, name=None):
        self.name = name
        self.input_shape = None
        self.output_shape = None
        self.dtype = None

    # -- structure
    def parameters(self):
        """The trainable Parameters of this layer, in a fixed order (kernel before bias)."""
        return []

    def state(self):
        """The non-trainable arrays of this layer (Parameters with grad None), in a fixed order."""
        return []

    def snapshot(self):
        """What a training forward pass changes on this layer, to put back with ``restore``."""
        return [s.value.copy() for s in self.state()]

    def restore(self, snapshot):
        for s, value in zip(self.state(), snapshot):
            s.value[...] = value

    def build(self, input_shape, dtype, rng):
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.output_shape = self.compute_output_shape(self.input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def count_params(self):
        """Trainable and non-trainable numbers, as Keras's count_params."""
        return sum(p.size for p in self.parameters()) + sum(s.size for s in self.state())

    def get_config(self):
        """The constructor arguments that rebuild this layer (saved as JSON in model files)."""
        return {"name": self.name}

    # -- computation
    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dy, cache, grads, need_input_grad=True):
        raise NotImplementedError

    def __call__(self, x, training=False):
        """Forward pass only, returning the output (convenient in a notebook)."""
        return self.forward(x, training)[0]

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({arguments})"


class Pooling2D(Layer):
    """What MaxPool2D and AveragePooling2D share: ``(pool_size=2, strides=None, padding="valid")``, Keras's
    arguments (strides default to the pool size), and the output shape."""

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = pair(strides, "strides") if strides is not None else self.pool_size
        self.padding = padding.lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"{type(self).__name__} padding must be 'valid' or 'same', got {padding!r}")

    def compute_output_shape(self, input_shape):
        what = self.name or type(self).__name__
        if len(input_shape) != 3:
            raise ShapeError(f"{what} expects (height, width, channels), got {input_shape}.")
        height, width, channels = input_shape
        out_h, _ = window_output_size(height, self.pool_size[0], self.strides[0], self.padding)
        out_w, _ = window_output_size(width, self.pool_size[1], self.strides[1], self.padding)
        if out_h < 1 or out_w < 1:
            raise ShapeError(f"{what}: a {self.pool_size} window does not fit in a {height}x{width} input. "
                             "Remove a pooling layer or use padding='same'.")
        return (out_h, out_w, channels)

    def get_config(self):
        return {"name": self.name, "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


def regularizer_config(layer):
    """The kernel_regularizer/bias_regularizer entries of a layer's config (only those that are set)."""
    from minicnn.regularizers import serialize

    return {name: serialize(getattr(layer, name)) for name in ("kernel_regularizer", "bias_regularizer")
            if getattr(layer, name) is not None}


def pair(value, what):
    """Turn 3 into (3, 3) and check that a pair of positive integers came out."""
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{what} must be a positive integer or a pair of them, got {value!r}")
    return value


def same_padding(size, window, stride):
    """Keras/TensorFlow "same" padding along one axis: output = ceil(size / stride), and the padding needed
    for that, split with the extra pixel (if odd) at the end. Returns (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def window_output_size(size, window, stride, padding):
    """Output length of a sliding window along one axis, and the (before, after) padding, Keras style."""
    if padding == "same":
        before, after = same_padding(size, window, stride)
    elif padding == "valid":
        before, after = 0, 0
    else:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return (size + before + after - window) // stride + 1, (before, after)

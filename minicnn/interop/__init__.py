"""Bridges between minicnn and other frameworks. Nothing here is imported by ``import minicnn``.

Keras 3 (see docs/keras-parity.md)::

    from minicnn.interop import to_keras, from_keras, load_keras_model
    keras_model = to_keras(model)                  # a keras.Sequential with the same layers and weights
    model = from_keras(keras_model)                # and back
    model = load_keras_model("digits.keras")       # a model trained and saved with Keras

Keras itself is imported only when one of these functions is called (``pip install minicnn[test]`` installs
Keras 3 with the JAX backend).
"""
from minicnn.interop.keras import InteropWarning, UnsupportedLayerError, from_keras, load_keras_model, to_keras

__all__ = ["to_keras", "from_keras", "load_keras_model", "UnsupportedLayerError", "InteropWarning"]

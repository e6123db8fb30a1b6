"""Ready-made models.

* ``seed_cnn``: the network of the student reports minicnn grew out of (about 98.5% on MNIST):
  3 x [Conv2D(64, 3x3, valid) + ReLU + MaxPool 2x2], Flatten, Dense 64 + ReLU, Dense 32 + ReLU, Dense 10 + softmax.
* ``default_cnn``: two 3x3 "same" convolutions (32 and 64 filters), each followed by 2x2 pooling, then
  Dense 128 + ReLU and Dense 10 + softmax; reaches 99% on MNIST in a few epochs (train.py's default).
* ``lenet5``: a LeNet-5-style network (6 and 16 5x5 filters, Dense 120, 84, 10), as in the benchmarks.
* ``mlp``: Flatten, Dense 256 + ReLU, Dense 128 + ReLU, Dense 10 + softmax.

Each takes ``engine=`` ("fast", "reference" or "twins") and ``threads=``, passed to ``Sequential``.
"""
from __future__ import annotations

from minicnn.layers import Conv2D, Dense, Flatten, MaxPool2D
from minicnn.model import Sequential


def seed_cnn(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    layers = []
    for _ in range(3):
        layers += [Conv2D(64, 3, activation="relu"), MaxPool2D(2)]
    layers += [Flatten(), Dense(64, activation="relu"), Dense(32, activation="relu"),
               Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="seed_cnn",
                      engine=engine, threads=threads)


def default_cnn(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    layers = [Conv2D(32, 3, padding="same", activation="relu"), MaxPool2D(2),
              Conv2D(64, 3, padding="same", activation="relu"), MaxPool2D(2),
              Flatten(), Dense(128, activation="relu"), Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="default_cnn",
                      engine=engine, threads=threads)


def lenet5(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    layers = [Conv2D(6, 5, padding="same", activation="relu"), MaxPool2D(2),
              Conv2D(16, 5, activation="relu"), MaxPool2D(2),
              Flatten(), Dense(120, activation="relu"), Dense(84, activation="relu"),
              Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="lenet5",
                      engine=engine, threads=threads)


def mlp(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    layers = [Flatten(), Dense(256, activation="relu"), Dense(128, activation="relu"),
              Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="mlp",
                      engine=engine, threads=threads)


ARCHITECTURES = {"seed": seed_cnn, "default": default_cnn, "lenet5": lenet5, "mlp": mlp}

"""Ready-made models.

* ``seed_cnn``: the network of the student reports minicnn grew out of (about 98.5% on MNIST):
  3 x [Conv2D(64, 3x3, valid) + ReLU + MaxPool 2x2], Flatten, Dense 64 + ReLU, Dense 32 + ReLU, Dense 10 + softmax.
* ``default_cnn``: two 3x3 "same" convolutions (32 and 64 filters), each followed by 2x2 pooling, then
  Dense 128 + ReLU and Dense 10 + softmax; reaches 99% on MNIST in a few epochs (train.py's default).
* ``lenet5``: a LeNet-5-style network (6 and 16 5x5 filters, Dense 120, 84, 10), as in the benchmarks.
* ``mlp``: Flatten, Dense 256 + ReLU, Dense 128 + ReLU, Dense 10 + softmax.

The student reports' other models (the toolkit: BatchNormalization, Dropout, LeakyReLU, regularizers):

* ``report001``: 2 x [Conv2D(64) + ReLU + BN], MaxPool, Dropout 0.3; 2 x [Conv2D(128) + ReLU + BN], MaxPool,
  Dropout 0.4; Conv2D(256) + ReLU + BN, MaxPool, Dropout 0.5; Flatten, Dense 512 + ReLU, Dropout 0.5,
  Dense 256 + ReLU, Dropout 0.5, Dense 10 + softmax. All 3x3 convolutions, padding "same" (the report does not say;
  "same" keeps 28 -> 14 -> 7 -> 3 after the pools), each ReLU'd before its BatchNormalization (Keras habit:
  ``Conv2D(..., activation="relu")`` then ``BatchNormalization()``). Trained at batch 128.
* ``report003``: Flatten, Dense 128 + leaky ReLU (slope 0.2), Dense 128 + leaky ReLU (0.2), Dense 10 + softmax.
* ``report004``: ``RandomRotation(10/360)`` (about ±10 degrees, in training only: drawn digits are tilted), then
  the seed CNN with ``l2(0.01)`` kernel and bias regularizers on its first convolution. The rotation takes no
  weights and no draw from the model's generator: the initial weights are the seed CNN's.

``with_augmentation(model, layers)``: the same model with these augmentation layers at its start instead of the
ones it had (train.py's ``--augment``).

Each takes ``engine=`` ("fast", "reference" or "twins") and ``threads=``, passed to ``Sequential``.
"""
from __future__ import annotations

from minicnn.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RandomRotation
from minicnn.model import Sequential
from minicnn.regularizers import l2


def seed_cnn(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None,
             first_regularizer=None, name="seed_cnn"):
    """``first_regularizer``: a kernel and bias regularizer for the first convolution (report004)."""
    layers = []
    for number in range(3):
        regularizer = first_regularizer if number == 0 else None
        layers += [Conv2D(64, 3, activation="relu", kernel_regularizer=regularizer, bias_regularizer=regularizer),
                   MaxPool2D(2)]
    layers += [Flatten(), Dense(64, activation="relu"), Dense(32, activation="relu"),
               Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name=name,
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


def report001(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    def block(filters, convolutions, rate):
        layers = []
        for _ in range(convolutions):
            layers += [Conv2D(filters, 3, padding="same", activation="relu"), BatchNormalization()]
        return layers + [MaxPool2D(2), Dropout(rate)]

    layers = [*block(64, 2, 0.3), *block(128, 2, 0.4), *block(256, 1, 0.5), Flatten(),
              Dense(512, activation="relu"), Dropout(0.5), Dense(256, activation="relu"), Dropout(0.5),
              Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="report001",
                      engine=engine, threads=threads)


def report003(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    layers = [Flatten(), Dense(128, activation="leaky_relu"), Dense(128, activation="leaky_relu"),
              Dense(classes, activation="softmax")]
    return Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed, name="report003",
                      engine=engine, threads=threads)


def report004(input_shape=(28, 28, 1), classes=10, dtype="float32", seed=0, engine=None, threads=None):
    model = seed_cnn(input_shape, classes, dtype, seed, engine, threads, first_regularizer=l2(0.01), name="report004")
    return with_augmentation(model, [RandomRotation(10 / 360)])


def with_augmentation(model, layers):
    """A new model: ``layers`` (RandomRotation, RandomTranslation, RandomZoom; none to remove them), then the
    layers of ``model`` after its leading augmentation layers, with the same settings and initial weights."""
    from minicnn.layers import LAYER_CLASSES

    config = model.get_config()
    kept = config["layers"]
    while kept and getattr(LAYER_CLASSES[kept[0]["class"]], "augments", False):
        kept = kept[1:]
    config["layers"] = [{"class": type(layer).__name__, "config": layer.get_config()} for layer in layers] + kept
    new = Sequential.from_config(config)
    new.set_weights(model.get_weights())
    return new


ARCHITECTURES = {"seed": seed_cnn, "default": default_cnn, "lenet5": lenet5, "mlp": mlp, "report001": report001,
                 "report003": report003, "report004": report004}

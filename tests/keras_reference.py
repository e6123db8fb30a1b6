"""What the Keras tests share: Keras 3 on the JAX backend (the reference) or a skip, JAX's x64 switch, and the
error measure every comparison uses (docs/keras-parity.md)."""
import contextlib
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip(f"the Keras tests run on Keras's JAX backend (KERAS_BACKEND={keras.backend.backend()})",
                allow_module_level=True)
jax = pytest.importorskip("jax")


@contextlib.contextmanager
def x64_enabled():
    """float64 in JAX needs x64, a global switch: on inside the block, then restored."""
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def scaled_error(actual, expected, percentile=100):
    """max |actual - expected| / max |expected| (or that percentile of the differences instead of their max)."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    difference = np.abs(actual - expected)
    difference = np.max(difference) if percentile == 100 else np.percentile(difference, percentile)
    return float(difference / max(np.max(np.abs(expected)), 1e-30))


def digit_like_input(rng, count, size=28, dtype=np.float64):
    """MNIST-like images: a black background (exact zeros, so convolutions produce exact ties) with bright
    strokes (many pixels exactly 1.0) and soft edges."""
    images = np.zeros((count, size, size, 1), dtype=dtype)
    for image in images:
        for _ in range(3):
            top, left = rng.integers(3, size - 10, size=2)
            height, width = rng.integers(2, 8, size=2)
            image[top:top + height, left:left + width, 0] = 1.0
            image[top - 1, left:left + width, 0] = rng.uniform(0.2, 0.8, size=width)
    return images

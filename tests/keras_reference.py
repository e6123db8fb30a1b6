"""What the Keras tests share: Keras 3 on the JAX backend (the reference) or a skip, JAX's x64 switch, the
error measure every comparison uses (docs/keras-parity.md), and test images: digit-like ones, and tie-free ones
for comparing gradients."""
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
    """MNIST-like images: a black background (exact zeros, so convolutions produce ties) with bright strokes
    (many pixels exactly 1.0) and soft edges. Ties computed in float32 break by rounding, differently in minicnn
    and Keras and from one BLAS to another: compare gradients on tie_free_digits."""
    images = np.zeros((count, size, size, 1), dtype=dtype)
    for image in images:
        for _ in range(3):
            top, left = rng.integers(3, size - 10, size=2)
            height, width = rng.integers(2, 8, size=2)
            image[top:top + height, left:left + width, 0] = 1.0
            image[top - 1, left:left + width, 0] = rng.uniform(0.2, 0.8, size=width)
    return images


# Float32 rounding moves a layer's values by at most 1.3e-6 of its largest |value| (measured on the seed CNN in
# minicnn's three paths and in Keras, under OpenBLAS's Haswell, SkylakeX and Sandybridge kernels): a ReLU input
# or a max-pool window's lead closer than that to flipping may route the gradient differently in minicnn and in
# Keras. Tie-free inputs keep every decision at least DECISION_MARGIN (about 4x that) away from flipping.
DECISION_MARGIN = 5e-6


def decision_margins(model, x):
    """Per image of x: how close its nearest ReLU or max-pool decision in `model` is to flipping, relative to the
    largest |value| entering that layer (over the batch), computed in float64: the smallest |input| of every ReLU
    and the smallest lead of every pooling window's maximum over its runner-up (windows whose two largest entries
    are both exactly 0 excluded: ReLU zeros, which are exact on every machine and pass no gradient)."""
    from minicnn.gradcheck import pool_windows
    from minicnn.layers import MaxPool2D, ReLU

    model = model.clone(dtype="float64")
    x = np.asarray(x, dtype=np.float64)
    inputs = [x] + [output for _, output in model.activations(x)]
    margins = np.full(len(x), np.inf)
    for layer, values in zip(model.layers, inputs):
        if isinstance(layer, ReLU):
            distance = np.abs(values)
        elif isinstance(layer, MaxPool2D):
            windows = np.sort(pool_windows(layer, values), axis=-1)
            first, second = windows[..., -1], windows[..., -2]
            distance = np.where((first == 0) & (second == 0), np.inf, first - second)
        else:
            continue
        margins = np.minimum(margins, distance.reshape(len(x), -1).min(axis=1) / np.abs(values).max())
    return margins


def tie_free_digits(model, rng, count, dtype=np.float64, margin=DECISION_MARGIN):
    """Digit-like strokes on a noisy grey background (values in [0, 1]) on which every ReLU and max-pool decision
    of `model` is at least `margin` from flipping (decision_margins), so that minicnn and Keras route every
    gradient alike on any CPU and BLAS. Drawn from pools of candidates; the float64 margins select the same images
    on every machine."""
    size = model.input_shape[0]
    for _ in range(20):
        candidates = 0.5 * digit_like_input(rng, 16 * count, size) + 0.5 * rng.random((16 * count, size, size, 1))
        kept = candidates[decision_margins(model, candidates) >= margin]  # (a subset's margins only grow)
        if len(kept) >= count:
            return kept[:count].astype(dtype)
    raise AssertionError(f"fewer than {count} of {20 * 16 * count} candidate images keep the decisions of "
                         f"{model.name} {margin:.0e} from flipping")

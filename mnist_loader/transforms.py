"""Small helpers to prepare the loaded arrays for training."""

from __future__ import annotations

import numpy as np


def to_float32(images: np.ndarray, add_channel_axis: bool = False) -> np.ndarray:
    """Scale uint8 images to float32 in [0, 1] (x / 255), optionally adding a trailing channel axis.

    With `add_channel_axis=True`, (N, 28, 28) becomes (N, 28, 28, 1): NHWC, the layout minicnn uses.
    The division matches `x.astype("float32") / 255` exactly, as in Keras examples.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float32 expects uint8 images (0-255), got {images.dtype}")
    scaled = images.astype(np.float32)
    scaled /= np.float32(255.0)
    return scaled[..., np.newaxis] if add_channel_axis else scaled


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int | None = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split off a random `val_fraction` of the examples: `(x_train, y_train), (x_val, y_val)`.

    The validation set has round(len(x) * val_fraction) examples (at least one), drawn with `seed`; the same
    seed gives the same split. Both parts keep the original order of the examples; the inputs are unchanged.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    count = len(x)
    val_count = max(1, int(round(count * val_fraction)))
    if val_count >= count:
        raise ValueError(f"cannot split {count} examples into a non-empty training and validation set")
    order = np.random.default_rng(seed).permutation(count)
    val_indices, train_indices = np.sort(order[:val_count]), np.sort(order[val_count:])
    return (x[train_indices], y[train_indices]), (x[val_indices], y[val_indices])

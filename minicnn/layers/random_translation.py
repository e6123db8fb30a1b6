"""RandomTranslation: in training, shift each image by its own random offset; at inference, nothing.

Shapes: x and y are (N, H, W, C). As Keras: ``height_factor`` and ``width_factor`` are fractions of the image's
height and width, a number f meaning [-f, f] and a pair (a, b) meaning [a, b], all in [-1, 1]. Each image draws
u_h, u_w uniformly in those ranges and moves by dy = u_h H rows down and dx = u_w W columns right (negative: up,
left)::

    x_in = x - dx            y_in = y - dy

    forward:   y  = warp(x; dx, dy)                       (bilinear, fill_mode for the pixels shifted in)
    backward:  dx = warp^T(dy; dx, dy)
    inference: y = x, dx = dy

The warp and its transpose, the fill modes and the seeding: minicnn/layers/image_transform.py.
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.image_transform import RandomAffineTransform, factor_range


class RandomTranslation(RandomAffineTransform):
    """``RandomTranslation(height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
    fill_value=0.0)``, as ``keras.layers.RandomTranslation`` (channels-last images)."""

    default_name = "random_translation"

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.height_factor = factor_range(height_factor, "RandomTranslation height_factor")
        self.width_factor = factor_range(width_factor, "RandomTranslation width_factor")

    def draw(self, rng, count, height, width):
        shift_down = rng.uniform(*self.height_factor, size=count) * height
        shift_right = rng.uniform(*self.width_factor, size=count) * width
        return translation_transforms(shift_down, shift_right)

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": list(self.width_factor)}


def translation_transforms(shift_down, shift_right):
    """(N, 6) transforms moving each image ``shift_down`` rows down and ``shift_right`` columns right."""
    ones, zeros = np.ones_like(shift_down), np.zeros_like(shift_down)
    return np.stack([ones, zeros, -shift_right, zeros, ones, -shift_down], axis=1)

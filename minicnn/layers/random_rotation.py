"""RandomRotation: in training, rotate each image by its own random angle about its center; at inference, nothing.

Shapes: x and y are (N, H, W, C). ``factor`` is a fraction of a full turn, as Keras: ``factor=10/360`` draws each
angle uniformly in [-10, +10] degrees, ``factor=(a, b)`` in [360a, 360b] degrees (positive: counter-clockwise on
the screen, as Keras). With theta the angle and the center cx = (W-1)/2, cy = (H-1)/2, output pixel (x, y) reads
the input at the point rotated back (Keras's ``_compute_affine_matrix`` without shear, scale or translation)::

    x_in = cos(theta) (x - cx) - sin(theta) (y - cy) + cx
    y_in = sin(theta) (x - cx) + cos(theta) (y - cy) + cy

    forward:   y  = warp(x; theta)                        (bilinear, fill_mode for pixels from outside)
    backward:  dx = warp^T(dy; theta)                     (the same weights, scattered back)
    inference: y = x, dx = dy

The warp and its transpose, the fill modes and the seeding: minicnn/layers/image_transform.py.
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.image_transform import RandomAffineTransform, factor_range


class RandomRotation(RandomAffineTransform):
    """``RandomRotation(factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0)``, as
    ``keras.layers.RandomRotation`` (channels-last images)."""

    default_name = "random_rotation"

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.factor = factor_range(factor, "RandomRotation factor (a fraction of a full turn)")

    def draw(self, rng, count, height, width):
        degrees = rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=count)
        return rotation_transforms(np.deg2rad(degrees), height, width)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


def rotation_transforms(angles, height, width):
    """(N, 6) transforms rotating by ``angles`` (radians) about the image center (Keras's matrix)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([cos, -sin, cx - cx * cos + cy * sin, sin, cos, cy - cx * sin - cy * cos], axis=1)

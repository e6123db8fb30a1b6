"""RandomZoom: in training, zoom each image in or out about its center by its own random factor; at inference,
nothing.

Shapes: x and y are (N, H, W, C). As Keras: ``height_factor`` f means [-f, f], a pair (a, b) means [a, b], each
in (-1, 1]; each image draws u in that range and reads the input over a (1 + u) times larger area: POSITIVE u
ZOOMS OUT (the digit gets smaller), negative u zooms in. ``width_factor=None`` (the default) uses the same draw
for both axes (the aspect ratio is kept); else the width draws its own. With zx = 1 + u_w, zy = 1 + u_h and the
center cx = (W-1)/2, cy = (H-1)/2::

    x_in = zx (x - cx) + cx            y_in = zy (y - cy) + cy

    forward:   y  = warp(x; zx, zy)                       (bilinear, fill_mode for pixels from outside)
    backward:  dx = warp^T(dy; zx, zy)
    inference: y = x, dx = dy

The warp and its transpose, the fill modes and the seeding: minicnn/layers/image_transform.py.
"""
from __future__ import annotations

import numpy as np

from minicnn.layers.image_transform import RandomAffineTransform, factor_range


class RandomZoom(RandomAffineTransform):
    """``RandomZoom(height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
    fill_value=0.0)``, as ``keras.layers.RandomZoom`` (channels-last images)."""

    default_name = "random_zoom"

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, name=None):
        super().__init__(fill_mode, interpolation, seed, fill_value, name)
        self.height_factor = factor_range(height_factor, "RandomZoom height_factor", high_inclusive=True)
        self.width_factor = None if width_factor is None else factor_range(width_factor, "RandomZoom width_factor")
        for low, _ in (self.height_factor, self.width_factor or (0, 0)):
            if low <= -1:
                raise ValueError(f"RandomZoom factors must be above -1 (1 + factor is the zoom), got {low}")

    def draw(self, rng, count, height, width):
        zoom_h = 1.0 + rng.uniform(*self.height_factor, size=count)
        zoom_w = zoom_h if self.width_factor is None else 1.0 + rng.uniform(*self.width_factor, size=count)
        return zoom_transforms(zoom_h, zoom_w, height, width)

    def get_config(self):
        return {**super().get_config(), "height_factor": list(self.height_factor),
                "width_factor": None if self.width_factor is None else list(self.width_factor)}


def zoom_transforms(zoom_h, zoom_w, height, width):
    """(N, 6) transforms reading a ``zoom_h`` x ``zoom_w`` times larger area about the center (Keras's matrix)."""
    zeros = np.zeros_like(zoom_h)
    return np.stack([zoom_w, zeros, (width - 1) / 2 * (1 - zoom_w), zeros, zoom_h, (height - 1) / 2 * (1 - zoom_h)],
                    axis=1)

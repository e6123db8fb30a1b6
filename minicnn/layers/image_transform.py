"""What the three augmentation layers share: an affine warp of an NHWC batch, and drawing one transform per image.

The layers (random_rotation.py, random_translation.py, random_zoom.py) differ only in which transform they draw.
Each transform is 6 numbers ``[a0, a1, a2, b0, b1, b2]``, in Keras's convention (``keras.ops.image.affine_transform``):
it maps a pixel (x = column, y = row) of the OUTPUT to the point of the INPUT it is read from::

    x_in = a0 * x + a1 * y + a2          y_in = b0 * x + b1 * y + b2

**Forward** (bilinear interpolation): with y0 = floor(y_in), x0 = floor(x_in), fy = y_in - y0, fx = x_in - x0,
each output pixel is a weighted sum of the 4 input pixels around (y_in, x_in), for every channel c::

    out[n, y, x, c] = (1-fy)(1-fx) in[y0, x0] + (1-fy) fx in[y0, x0+1] + fy (1-fx) in[y0+1, x0] + fy fx in[y0+1, x0+1]

where an index outside the image is replaced by ``fill_mode`` (Keras's, from jax.scipy.ndimage.map_coordinates):

* ``"reflect"``  (d c b a | a b c d | d c b a): index i -> i mod 2n, then 2n - 1 - i past n-1
* ``"wrap"``     (a b c d | a b c d | a b c d): i mod n
* ``"nearest"``  (a a a a | a b c d | d d d d): clip to [0, n-1]
* ``"constant"`` (k k k k | a b c d | k k k k): the pixel reads as ``fill_value`` k

``interpolation="nearest"`` reads the single pixel at (round(y_in), round(x_in)) (halves to even, as jnp.round).

**Backward**: the warp is linear in the input, so dL/din is the transpose: each output gradient goes back to the
4 input pixels it was read from, times the same weights (pixels read more than once add up; a constant fill
receives nothing)::

    din[n, fix(y0 + i), fix(x0 + j), c] += w_ij * dout[n, y, x, c]       for i, j in {0, 1}

The transforms are never learned: no gradient flows into them. ``affine_warp`` / ``affine_warp_backward`` are the
readable NumPy versions (the reference engine runs them); minicnn/kernels/warp.py has their Numba twins (the fast
engine runs those).

**Randomness**: call number k of a layer in training draws its transforms from
``numpy.random.default_rng((seed, k))`` (``seed=None``: a seed derived from the model's seed, see
``derived_seed``: adding augmentation leaves the model's initial weights as they were); ``fit`` sets k to the
global step number (epoch * steps per epoch + step) before every step, so an augmentation depends on (seed, epoch,
step) only, whatever ran before in the process (a resumed run draws what the uninterrupted run drew). The draws
are not Keras's (Keras has its own generator): compare with Keras with a fixed draw, e.g. ``factor=(a, a)``.
"""
from __future__ import annotations

import math

import numpy as np

from minicnn.errors import ShapeError
from minicnn.layers.base import Layer

FILL_MODES = ("reflect", "wrap", "constant", "nearest")  # Keras's order; the kernels take the index
INTERPOLATIONS = ("nearest", "bilinear")


def fix_index(index, size, mode):
    """Integer indices (any shape) mapped into [0, size) by fill mode code (FILL_MODES.index); for "constant" they
    are returned as they are (the caller checks 0 <= index < size)."""
    if mode == 0:  # reflect
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    if mode == 1:  # wrap
        return np.mod(index, size)
    if mode == 3:  # nearest
        return np.clip(index, 0, size - 1)
    return index


def corners(transforms, height, width, nearest):
    """The input pixels each output pixel reads: a list of (rows, columns, weights), each (N, H, W)."""
    rows, columns = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                                indexing="ij")
    a0, a1, a2, b0, b1, b2 = (transforms[:, k, None, None] for k in range(6))
    x_in = a0 * columns + a1 * rows + a2
    y_in = b0 * columns + b1 * rows + b2
    if nearest:
        return [(np.round(y_in).astype(np.int64), np.round(x_in).astype(np.int64), np.ones_like(y_in))]
    y0, x0 = np.floor(y_in), np.floor(x_in)
    fy, fx = y_in - y0, x_in - x0
    y0, x0 = y0.astype(np.int64), x0.astype(np.int64)
    return [(y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
            (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)]


def affine_warp(images, transforms, fill_mode, fill_value, nearest):
    """images (N, H, W, C), transforms (N, 6) float64 -> the warped images (N, H, W, C), same dtype.
    ``fill_mode``: the index of the mode in FILL_MODES; ``nearest``: True for nearest-pixel interpolation."""
    count, height, width, _ = images.shape
    out = np.zeros(images.shape, dtype=np.float64)
    batch = np.arange(count)[:, None, None]
    for rows, columns, weights in corners(transforms, height, width, nearest):
        inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
        rows, columns = fix_index(rows, height, fill_mode), fix_index(columns, width, fill_mode)
        values = images[batch, np.clip(rows, 0, height - 1), np.clip(columns, 0, width - 1)]
        if fill_mode == 2:  # constant
            values = np.where(inside[..., None], values, fill_value)
        out += weights[..., None] * values
    return out.astype(images.dtype)


def affine_warp_backward(output_grad, transforms, fill_mode, nearest):
    """The transpose of ``affine_warp``: output gradient (N, H, W, C) -> input gradient (N, H, W, C)."""
    count, height, width, channels = output_grad.shape
    grad = np.zeros(output_grad.shape, dtype=np.float64)
    batch = np.broadcast_to(np.arange(count)[:, None, None], (count, height, width))
    for rows, columns, weights in corners(transforms, height, width, nearest):
        inside = (rows >= 0) & (rows < height) & (columns >= 0) & (columns < width)
        if fill_mode != 2:
            inside = np.ones_like(inside)
        rows, columns = fix_index(rows, height, fill_mode), fix_index(columns, width, fill_mode)
        np.add.at(grad, (batch[inside], rows[inside], columns[inside]),
                  weights[inside][:, None] * output_grad[inside])
    return grad.astype(output_grad.dtype)


def derived_seed(rng):
    """A seed for a layer built with seed=None, from the model's random generator WITHOUT drawing from it (a child
    of its SeedSequence): the layers after it get the same initial weights as in the model without augmentation,
    so a run with and without augmentation start from the same weights."""
    sequence = getattr(getattr(rng, "bit_generator", None), "seed_seq", None)
    if sequence is None:
        return int(np.random.default_rng().integers(2 ** 31))
    return int(sequence.spawn(1)[0].generate_state(1)[0] % 2 ** 31)


def factor_range(factor, what, low=-1.0, high=1.0, high_inclusive=True):
    """Keras's factor argument: a number f means (-|f|, |f|), a pair (a, b) means (min, max); each within bounds."""
    if isinstance(factor, (tuple, list)) and len(factor) == 2:
        values = [factor[0], factor[1]]
    elif isinstance(factor, (int, float, np.integer, np.floating)) and not isinstance(factor, bool):
        values = [-abs(factor), abs(factor)]
    else:
        raise ValueError(f"{what} must be a number or a pair of numbers, got {factor!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or not (low <= value and (value <= high if high_inclusive else value < high)):
            raise ValueError(f"{what} must be in [{low}, {high}{']' if high_inclusive else ')'} (a pair of such "
                             f"numbers, or one number f meaning (-f, f)), got {factor!r}")
    return float(min(values)), float(max(values))


class RandomAffineTransform(Layer):
    """Base class of RandomRotation, RandomTranslation and RandomZoom: the fill/interpolation arguments, the seed,
    the call counter, identity at inference, and the warp. Subclasses define ``draw(rng, count, height, width)``,
    returning the (count, 6) transforms."""

    needs_whole_batch = True  # one draw per call for the whole batch (the fast engine warps it before splitting)
    augments = True           # no parameters, gradient-free draw: the fast engine may run it on the whole batch first

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, name=None):
        super().__init__(name)
        what = type(self).__name__
        if fill_mode not in FILL_MODES:
            raise ValueError(f"{what} fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"{what} interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{what} seed must be a non-negative integer or None, got {seed!r}")
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.seed = None if seed is None else int(seed)
        self.fill_value = float(fill_value)
        self.calls = 0

    def build(self, input_shape, dtype, rng):
        if len(input_shape) != 3:
            raise ShapeError(f"{type(self).__name__} expects images (height, width, channels), got {input_shape}")
        if self.seed is None:
            self.seed = derived_seed(rng)
        return super().build(input_shape, dtype, rng)

    def draw(self, rng, count, height, width):
        raise NotImplementedError

    def next_transforms(self, count):
        """The (count, 6) transforms of this call (call number ``calls``), counting the call."""
        height, width, _ = self.input_shape
        transforms = self.draw(np.random.default_rng((self.seed, self.calls)), count, height, width)
        self.calls += 1
        return np.ascontiguousarray(transforms, dtype=np.float64)

    @property
    def fill_mode_code(self):
        return FILL_MODES.index(self.fill_mode)

    def forward(self, x, training=False):
        if not training:
            return x, None
        transforms = self.next_transforms(len(x))
        return affine_warp(x, transforms, self.fill_mode_code, self.fill_value,
                           self.interpolation == "nearest"), transforms

    def backward(self, dy, cache, grads, need_input_grad=True):
        if not need_input_grad:
            return None
        if cache is None:
            return dy
        return affine_warp_backward(dy, cache, self.fill_mode_code, self.interpolation == "nearest")

    def snapshot(self):
        return self.calls

    def restore(self, snapshot):
        self.calls = snapshot

    def get_config(self):
        return {"name": self.name, "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "seed": self.seed, "fill_value": self.fill_value}

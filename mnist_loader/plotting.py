"""Saving a grid of example images with their labels, to eyeball a data set."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

_PAD = 2  # pixels between images
_LABEL_SPACE = 9  # pixels above each image for its label


def save_image_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    per_class: int = 4,
    title: str | None = None,
) -> Path:
    """Save a PNG with the first `per_class` images of each class, one column per class, each labelled.

    The images are tiled into one mosaic (fast to draw); Matplotlib's Agg renderer is used directly, so
    no display is needed and the pyplot backend is left alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = [int(label) for label in np.unique(labels)]
    height, width = images.shape[1:3]
    cell_height, cell_width = height + _LABEL_SPACE + _PAD, width + _PAD
    mosaic = np.zeros((per_class * cell_height, len(classes) * cell_width), dtype=np.uint8)
    captions = []
    for column, label in enumerate(classes):
        for row, index in enumerate(np.flatnonzero(labels == label)[:per_class]):
            top, left = row * cell_height + _LABEL_SPACE, column * cell_width
            mosaic[top:top + height, left:left + width] = images[index]
            captions.append((left + width / 2, top - 1.5, _label_text(label, class_names)))

    scale = 0.03  # inches per pixel
    figure = Figure(figsize=(mosaic.shape[1] * scale, mosaic.shape[0] * scale + (0.35 if title else 0.1)), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.add_axes((0, 0, 1, 1 - (0.35 if title else 0.1) / figure.get_figheight()))
    axis.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    axis.set_axis_off()
    for x, y, text in captions:
        axis.text(x, y, text, ha="center", va="bottom", fontsize=6.5)
    if title:
        figure.suptitle(title, fontsize=9, y=0.995, va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _label_text(label: int, class_names: Sequence[str] | None) -> str:
    """"7" for digits, "7: Sneaker" for named classes."""
    name = class_names[label] if class_names is not None else str(label)
    return str(label) if name == str(label) else f"{label}: {name}"

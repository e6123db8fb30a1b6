"""Predict the digit in your own image: a PNG/JPEG drawn in Paint, or a photo of a digit on paper.

    python train.py                                   # once: trains and saves mnist-default.npz
    python demo/predict_digit.py my_digit.png         # prints the three most likely digits
    python demo/predict_digit.py *.png --model seed --show processed.png

Models are looked for in the per-user models folder train.py saves to (minicnn/paths.py: $MINICNN_MODELS, else
~/.local/share/minicnn/models), from whichever folder you run this; the demo says which file it loaded and
when and on what that model was trained.

MNIST digits are white on black, about 20x20 pixels inside a 28x28 image, centred by their centre of mass.
Your image is brought to the same form first (see ``prepare_digit``), otherwise even a good model guesses badly.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np


class ImageProblem(ValueError):
    """The image cannot be turned into a digit (unreadable, blank, ...)."""


def prepare_digit(image):
    """A grayscale image (H, W) of any size, values 0-255 -> float32 (28, 28) in [0, 1], MNIST style.

    1. If the background is light (more light than dark pixels), invert: MNIST is white ink on black.
    2. Crop to the bounding box of the ink; scale it so its longer side is 20 pixels.
    3. Paste it into a black 28x28 image so that its centre of mass is at the centre.
    """
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ImageProblem(f"expected a 2-D grayscale image, got shape {pixels.shape}")
    if np.median(pixels) > 127:
        pixels = 255 - pixels
    low, high = float(pixels.min()), float(pixels.max())
    if high - low < 30:
        raise ImageProblem("the image is blank (almost no contrast): draw a digit, dark on light or light on dark")
    pixels = (pixels - low) / (high - low)
    pixels[pixels < 0.2] = 0  # paper texture and JPEG noise
    rows, columns = np.nonzero(pixels)
    pixels = pixels[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    scale = 20.0 / max(pixels.shape)
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    digit = np.asarray(Image.fromarray((pixels * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                       dtype=np.float32) / 255
    canvas = np.zeros((28, 28), dtype=np.float32)
    top, left = (28 - digit.shape[0]) // 2, (28 - digit.shape[1]) // 2
    canvas[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    total = canvas.sum()
    ys, xs = np.indices(canvas.shape)
    shift_y = int(round(13.5 - (ys * canvas).sum() / total))
    shift_x = int(round(13.5 - (xs * canvas).sum() / total))
    shift_y = int(np.clip(shift_y, -top, 28 - top - digit.shape[0]))
    shift_x = int(np.clip(shift_x, -left, 28 - left - digit.shape[1]))
    return np.roll(canvas, (shift_y, shift_x), axis=(0, 1))


def load_image(path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))  # transparent -> white paper
            return np.asarray(Image.alpha_composite(background, image).convert("L"))
    except FileNotFoundError:
        raise ImageProblem(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ImageProblem(f"{path}: not a readable image ({error}); save it as PNG or JPEG") from None


def describe_model(path, model):
    """'/home/me/.local/share/minicnn/models/mnist-default.npz (trained 2026-11-21 11:10 UTC on full MNIST ...)'."""
    record = getattr(model, "metadata", None) or {}
    if "trained_at" not in record:  # saved by model.save or an older train.py: only the file's time is known
        saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(Path(path).stat().st_mtime))
        return f"{path} (saved {saved}; no training record in the file)"
    trained = datetime.fromisoformat(record["trained_at"]).strftime("%Y-%m-%d %H:%M UTC")
    images = f"{record['training_images']:,} images of " if record.get("training_images") else ""
    details = [f"trained {trained} on {images}{record.get('data', 'unknown data')}"]
    if record.get("training"):
        details.append(record["training"] + (", stopped by Ctrl+C" if record.get("interrupted") else ""))
    if record.get("test_accuracy") is not None:
        details.append(f"test accuracy {record['test_accuracy'] * 100:.2f}%")
    return f"{path} ({'; '.join(details)})"


def resolve_model(choice):
    """--model: the name of a model train.py saved in the models folder ('default', 'seed', ...), or a file."""
    import minicnn
    from minicnn.paths import find_model

    if choice is None or choice in minicnn.ARCHITECTURES:
        return find_model("mnist", choice or "default")
    return Path(choice).absolute()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict the digit in your own images with a trained minicnn model.")
    parser.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    parser.add_argument("--model", default=None,
                        help="a model file saved by train.py, or the name of a model train.py saved in the models "
                             "folder: default, seed, lenet5, mlp (default: default, i.e. mnist-default.npz there, "
                             "else mnist-default-sample.npz)")
    parser.add_argument("--show", default=None, help="save the 28x28 images the model actually sees to this PNG")
    arguments = parser.parse_args(argv)

    import minicnn
    from minicnn.paths import models_dir

    path = resolve_model(arguments.model)
    if not path.exists() and path.parent == models_dir():
        option = f" --model {arguments.model}" if arguments.model not in (None, "default") else ""
        print(f"error: no trained model {path.name} in {path.parent}: train one first with "
              f"`python train.py{option}` (or pass --model FILE)", file=sys.stderr)
        return 2
    try:
        model = minicnn.load_model(path)
    except minicnn.ModelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"model: {describe_model(path, model)}")
    prepared, names, status = [], [], 0
    for path in arguments.images:
        try:
            prepared.append(prepare_digit(load_image(path)))
            names.append(path)
        except ImageProblem as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
    if not prepared:
        return status or 1
    probabilities = model.predict(np.stack(prepared)[..., None])
    for name, row in zip(names, probabilities):
        best = np.argsort(row)[::-1][:3]
        print(f"{name}: {best[0]}  ({', '.join(f'{digit}: {row[digit] * 100:.1f}%' for digit in best)})")
    if arguments.show:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        figure, axes = plt.subplots(1, len(prepared), figsize=(1.6 * len(prepared), 1.9), squeeze=False)
        for axis, image, row in zip(axes[0], prepared, probabilities):
            axis.imshow(image, cmap="gray")
            axis.set_title(str(int(row.argmax())))
            axis.axis("off")
        figure.savefig(arguments.show, dpi=100, bbox_inches="tight")
        print(f"saved what the model sees to {arguments.show}")
    return status


if __name__ == "__main__":
    sys.exit(main())

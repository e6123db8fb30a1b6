"""Make docs/read_digit.png: every step of minicnn.digits.read_digit on two generated images (a photo of a digit
on tinted, unevenly lit paper with specks, and light ink on a dark board), as demo/drawn_digits.py makes them.

    python docs/digit_steps.py [--out docs/read_digit.png]
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
import drawn_digits  # noqa: E402

import mnist_loader  # noqa: E402
from minicnn.digits import digit_steps  # noqa: E402


def example(digit, want_dark, seed):
    """A generated photo (JPEG bytes) of ``digit`` with the wanted polarity."""
    rng = np.random.default_rng(seed)
    while True:
        data, record = drawn_digits.redraw(digit, rng)
        if record["kind"] == "photo" and record["dark"] == want_dark:
            return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("read_digit.png")))
    arguments = parser.parse_args()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, (x_test, _) = mnist_loader.load_mnist(verbose=False)
    examples = [example(x_test[0], True, 3), example(x_test[1], False, 5)]
    rows = [digit_steps(data) for data in examples]
    figure, axes = plt.subplots(len(rows), len(rows[0]) + 1, figsize=(2 * (len(rows[0]) + 1), 2.3 * len(rows)))
    for row, (data, steps) in enumerate(zip(examples, rows)):
        with Image.open(io.BytesIO(data)) as image:
            axes[row, 0].imshow(image.convert("RGB"))
        axes[row, 0].set_title("the file", fontsize=10)
        for column, (name, picture) in enumerate(steps, start=1):
            axes[row, column].imshow(picture, cmap="gray", vmin=0, vmax=1)
            axes[row, column].set_title(name, fontsize=10)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(arguments.out, dpi=60)
    print(f"saved {arguments.out} ({Path(arguments.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()

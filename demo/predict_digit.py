"""Predict the digit in your own image: a PNG/JPEG drawn in Paint, or a photo of a digit on paper.

    python train.py                                   # once: trains and saves mnist-default.npz
    python demo/predict_digit.py my_digit.png         # prints the three most likely digits
    python demo/predict_digit.py *.png --model seed --show processed.png

The same as ``minicnn predict IMAGE...`` (minicnn/commands/predict.py), kept for the reports' habit. Models are
looked for in the per-user models folder train.py saves to (minicnn/paths.py); the first line says which file
was loaded, and when and on what that model was trained.

Your image is brought to MNIST's form (white ink on black, 20x20 inside 28x28, centred by mass) by
``minicnn.digits.read_digit``, which explains each step.
"""
from __future__ import annotations

import argparse
import sys

from minicnn.commands import predict
from minicnn.digits import ImageProblem, load_image, read_digit  # noqa: F401 (the demo's former names)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Predict the digit in your own images with a trained minicnn model.")
    predict.add_arguments(parser)
    return predict.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

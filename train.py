"""Train a CNN on MNIST (or Fashion-MNIST) with minicnn, evaluate it on the test set, write a report, save it.

    python train.py                      # the default CNN, reaches 99% on MNIST
    python train.py --model seed         # the student reports' seed CNN
    python train.py --engine reference   # the same, run by the layer files themselves (slow, the code to read)
    python train.py --help               # every option

The same as `minicnn train`. The code is in minicnn/commands/train.py; what it trains is in
minicnn/architectures.py, and how a model trains in minicnn/model.py (fit) and minicnn/reference.py.
"""
from __future__ import annotations

import sys

from minicnn.commands.train import main

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))

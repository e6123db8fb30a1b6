"""minicnn: a convolutional neural network engine written by hand with NumPy and Numba.

    import minicnn
    from minicnn.layers import Conv2D, MaxPool2D, Flatten, Dense
    model = minicnn.Sequential([...], input_shape=(28, 28, 1), engine="fast")   # or engine="reference"

Reading order: minicnn/layers/ (one layer per file), minicnn/reference.py (the reference engine: those
layers in order), minicnn/model.py, then minicnn/fast/ (the fast engine: a plan of fused steps and kernels).
"""
from minicnn import callbacks, layers, optimizers, regularizers
from minicnn.architectures import ARCHITECTURES, default_cnn, lenet5, mlp, report001, report003, report004, seed_cnn
from minicnn.errors import (
                            InputError,
                            LabelError,
                            MiniCNNError,
                            ModelFileError,
                            NonFiniteGradientError,
                            NonFiniteLossError,
                            ShapeError,
)
from minicnn.history import History
from minicnn.model import ENGINES, Sequential, load_model, warm_up

__version__ = "0.1.0"

__all__ = ["callbacks", "layers", "optimizers", "regularizers", "Sequential", "load_model", "History", "ENGINES",
           "warm_up", "seed_cnn", "default_cnn", "lenet5", "mlp", "report001", "report003", "report004",
           "ARCHITECTURES", "MiniCNNError", "ShapeError", "LabelError", "NonFiniteLossError", "ModelFileError",
           "InputError", "NonFiniteGradientError"]

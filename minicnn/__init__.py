"""minicnn: a convolutional neural network engine written by hand with NumPy and Numba.

    import minicnn
    from minicnn.layers import Conv2D, MaxPool2D, Flatten, Dense
    model = minicnn.Sequential([...], input_shape=(28, 28, 1))

See docs/design.md for how the pieces fit together.
"""
from minicnn import callbacks, layers, optimizers
from minicnn.architectures import ARCHITECTURES, default_cnn, lenet5, mlp, seed_cnn
from minicnn.backend import current_kernels, set_kernels, use_kernels, warm_up
from minicnn.errors import LabelError, MiniCNNError, ModelFileError, NonFiniteLossError, ShapeError
from minicnn.history import History
from minicnn.model import Sequential
from minicnn.serialization import load_model

__version__ = "0.1.0"

__all__ = ["callbacks", "layers", "optimizers", "Sequential", "load_model", "History", "current_kernels", "set_kernels",
           "use_kernels", "warm_up", "seed_cnn", "default_cnn", "lenet5", "mlp", "ARCHITECTURES", "MiniCNNError",
           "ShapeError", "LabelError", "NonFiniteLossError", "ModelFileError"]

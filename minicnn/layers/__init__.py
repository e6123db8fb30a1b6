"""minicnn's layers, one per file. Each file starts with the shapes and the math of its layer."""
from minicnn.layers.base import Layer, Parameter
from minicnn.layers.conv2d import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.flatten import Flatten
from minicnn.layers.maxpool2d import MaxPool2D
from minicnn.layers.relu import ReLU
from minicnn.layers.softmax import Softmax

MaxPooling2D = MaxPool2D  # the Keras name

LAYER_CLASSES = {cls.__name__: cls for cls in (Conv2D, Dense, Flatten, MaxPool2D, ReLU, Softmax)}
ACTIVATION_LAYERS = {"relu": ReLU, "softmax": Softmax}

__all__ = ["Layer", "Parameter", "Conv2D", "Dense", "Flatten", "MaxPool2D", "MaxPooling2D", "ReLU", "Softmax",
           "LAYER_CLASSES", "ACTIVATION_LAYERS"]

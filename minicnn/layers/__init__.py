"""minicnn's layers, one per file. Each file starts with the shapes and the math of its layer."""
from minicnn.layers.average_pooling2d import AveragePooling2D
from minicnn.layers.base import Layer, Parameter
from minicnn.layers.batch_normalization import BatchNormalization
from minicnn.layers.conv2d import Conv2D
from minicnn.layers.dense import Dense
from minicnn.layers.dropout import Dropout
from minicnn.layers.flatten import Flatten
from minicnn.layers.leaky_relu import LeakyReLU
from minicnn.layers.maxpool2d import MaxPool2D
from minicnn.layers.random_rotation import RandomRotation
from minicnn.layers.random_translation import RandomTranslation
from minicnn.layers.random_zoom import RandomZoom
from minicnn.layers.relu import ReLU
from minicnn.layers.softmax import Softmax

MaxPooling2D = MaxPool2D  # the Keras name
AvgPool2D = AveragePooling2D  # Keras's alias

LAYER_CLASSES = {cls.__name__: cls for cls in (AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                                               LeakyReLU, MaxPool2D, RandomRotation, RandomTranslation, RandomZoom,
                                               ReLU, Softmax)}
# activation= names on Conv2D/Dense -> the layer the model appends ("leaky_relu": Keras's activation function,
# whose default slope is 0.2, unlike the LeakyReLU layer's 0.3)
ACTIVATION_LAYERS = {"relu": ReLU, "softmax": Softmax, "leaky_relu": lambda: LeakyReLU(negative_slope=0.2)}

__all__ = ["Layer", "Parameter", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D", "Dense", "Dropout",
           "Flatten", "LeakyReLU", "MaxPool2D", "MaxPooling2D", "RandomRotation",
           "RandomTranslation", "RandomZoom", "ReLU", "Softmax", "LAYER_CLASSES", "ACTIVATION_LAYERS"]

"""mnist_loader: MNIST and Fashion-MNIST for minicnn, like keras.datasets but with no dependencies.

    from mnist_loader import load_mnist, to_float32, train_val_split
    (x_train, y_train), (x_test, y_test) = load_mnist()     # uint8 (N, 28, 28) and uint8 (N,)
    x_train = to_float32(x_train, add_channel_axis=True)     # float32 (N, 28, 28, 1) in [0, 1]

Data comes from `data_dir`, $MINICNN_DATA, the per-user cache, a download, or (MNIST only) a small bundled
sample, in that order; `load_dataset` also says which. Every file's checksum is verified.
"""

from .catalog import FASHION_MNIST, MNIST
from .datasets import DataFiles, LoadedDataset, load_dataset, load_fashion_mnist, load_mnist, locate_files
from .errors import DataNotFound, DatasetError, SampleDataWarning
from .idx import encode_idx, parse_idx, read_idx
from .locations import cache_root
from .transforms import to_float32, train_val_split

MNIST_CLASSES = MNIST.class_names
FASHION_MNIST_CLASSES = FASHION_MNIST.class_names

__all__ = [
    "load_mnist",
    "load_fashion_mnist",
    "load_dataset",
    "locate_files",
    "LoadedDataset",
    "DataFiles",
    "to_float32",
    "train_val_split",
    "read_idx",
    "parse_idx",
    "encode_idx",
    "cache_root",
    "DatasetError",
    "DataNotFound",
    "SampleDataWarning",
    "MNIST_CLASSES",
    "FASHION_MNIST_CLASSES",
]

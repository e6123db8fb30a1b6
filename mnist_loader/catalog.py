"""What each data set consists of: file names, payload checksums, expected shapes and default mirrors.

Checksums are MD5 digests of the *decompressed* IDX payload, not of the .gz file. The .gz bytes depend on
the compressor and its settings (the copies in the project's shared data directory, for instance, are
recompressed), while the payload is the data set itself and is the same wherever it comes from.

MNIST payload MD5s are the well-known ones for the original LeCun files. (The original .gz MD5s are
f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...; the shared copies do not match those because they were
recompressed, but their payloads match the known payload MD5s below.)

Fashion-MNIST payload MD5s were computed from the shared files. Those .gz files do *not* match Zalando's
published .gz MD5s (train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels 25c81989df183df01b3e8a0aad5dffbe,
t10k-images bef4ecab320f06d8554ea6380940ec79, t10k-labels bb300cfdad3c16e7a12a480ee83cd310): they were
recompressed like the MNIST ones. Their payload MD5s, however, are identical to the payload MD5s that several
independent public projects list for the decompressed original Zalando files, so the shared files are the
originals.

Mirror file names: both MNIST mirrors serve the four LeCun .gz names (torchvision and the TensorFlow tutorials
use them). For Fashion-MNIST, Zalando's S3 website and Keras's tf-keras-datasets bucket both serve the four
files under the same names. (tf-keras-datasets holds MNIST only as a single mnist.npz, so it is not an MNIST
mirror here.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileSpec:
    """One IDX file of a data set."""

    role: str  # "train_images", "train_labels", "test_images" or "test_labels"
    filename: str  # the gzipped name, as served by the mirrors
    payload_md5: str  # MD5 of the decompressed IDX bytes
    shape: tuple[int, ...]  # the array the file must hold

    @property
    def raw_filename(self) -> str:
        """The name of the same file once decompressed (without ".gz")."""
        return self.filename.removesuffix(".gz")


@dataclass(frozen=True)
class DatasetSpec:
    """A data set: its files, where it lives on disk and where it can be downloaded from."""

    name: str  # canonical name, also the subdirectory under MINICNN_DATA and the cache: "mnist"
    title: str  # for messages: "MNIST"
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...]  # base URLs, tried in turn; a file's URL is base + filename
    mirrors_env: str  # environment variable that overrides the mirrors
    class_names: tuple[str, ...]
    sample_filename: str | None  # bundled sample in mnist_loader/sample/, or None if there is none

    def file(self, role: str) -> FileSpec:
        """The file with the given role."""
        for file_spec in self.files:
            if file_spec.role == role:
                return file_spec
        raise KeyError(role)


ROLES = ("train_images", "train_labels", "test_images", "test_labels")
NUM_CLASSES = 10

MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    files=(
        FileSpec("train_images", "train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
        FileSpec("train_labels", "train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", (60000,)),
        FileSpec("test_images", "t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
        FileSpec("test_labels", "t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", (10000,)),
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    mirrors_env="MINICNN_MNIST_MIRRORS",
    class_names=tuple(str(digit) for digit in range(10)),
    sample_filename="mnist_sample.npz",
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    files=(
        FileSpec("train_images", "train-images-idx3-ubyte.gz", "f4a8712d7a061bf5bd6d2ca38dc4d50a", (60000, 28, 28)),
        FileSpec("train_labels", "train-labels-idx1-ubyte.gz", "9018921c3c673c538a1fc5bad174d6f9", (60000,)),
        FileSpec("test_images", "t10k-images-idx3-ubyte.gz", "8181f5470baa50b63fa0f6fddb340f0a", (10000, 28, 28)),
        FileSpec("test_labels", "t10k-labels-idx1-ubyte.gz", "15d484375f8d13e6eb1aabb0c3f46965", (10000,)),
    ),
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    ),
    mirrors_env="MINICNN_FASHION_MNIST_MIRRORS",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    # A class-balanced 10,000 + 2,000 Fashion-MNIST sample compresses to about 5.3 MB, well over the
    # 2 MB budget, so none is bundled: offline without data, load_fashion_mnist() raises DatasetError.
    sample_filename=None,
)

DATASETS = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}

_ALIASES = {"fashion_mnist": "fashion-mnist", "fashion": "fashion-mnist", "fashionmnist": "fashion-mnist"}


def get_spec(name: str) -> DatasetSpec:
    """The DatasetSpec for "mnist" or "fashion-mnist" (also accepts "fashion_mnist" and "fashion")."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return DATASETS[key]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ValueError(f"unknown data set {name!r}; known data sets: {known}") from None

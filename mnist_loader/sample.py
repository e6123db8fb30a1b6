"""The small MNIST sample bundled with the package, used when the full set cannot be found or downloaded.

It is a fixed, class-balanced subset of real MNIST: 1,000 training and 200 test images of each digit
(10,000 + 2,000), chosen evenly spread over each class's occurrences in the original files and kept in
their original order. `python -m mnist_loader.build_sample` rebuilds it from the full files; the result is
the same arrays every time, and their digest (SAMPLE_DIGESTS) is checked whenever the sample is loaded.

The .npz is written with fixed timestamps and a fixed deflate level so that rebuilding it with the same zlib gives
the same bytes; its contents are what the tests compare, because another zlib may compress differently.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from .catalog import DatasetSpec
from .errors import DatasetError

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
# Arrays stored in a sample file, in this order. The *_indices arrays say where each image sits in the
# full training or test file, so the sample can be traced back and checked.
SAMPLE_KEYS = ("x_train", "y_train", "x_test", "y_test", "train_indices", "test_indices")
# Digest of the bundled sample's arrays (see arrays_digest); printed by build_sample.
# Deflate level 7 packs the MNIST sample within 1% of level 9 in a tenth of the time.
_COMPRESS_LEVEL = 7
SAMPLE_DIGESTS = {"mnist": "6cf79baec14b1a35e93531451d6000d2"}


def sample_path(spec: DatasetSpec) -> Path | None:
    """Where the bundled sample of `spec` lives, or None if the package has no sample of it."""
    return SAMPLE_DIR / spec.sample_filename if spec.sample_filename else None


def select_balanced(labels: np.ndarray, per_class: int, num_classes: int = 10) -> np.ndarray:
    """Indices of `per_class` examples of each class, evenly spread over that class's occurrences, sorted.

    Pure integer arithmetic on the labels, so the choice is the same on every machine and NumPy version.
    """
    chosen = []
    for label in range(num_classes):
        occurrences = np.flatnonzero(labels == label)
        if len(occurrences) < per_class:
            raise ValueError(f"class {label} has only {len(occurrences)} examples, fewer than {per_class}")
        chosen.append(occurrences[(np.arange(per_class) * len(occurrences)) // per_class])
    return np.sort(np.concatenate(chosen))


def build_sample_arrays(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    train_per_class: int = TRAIN_PER_CLASS, test_per_class: int = TEST_PER_CLASS,
) -> dict[str, np.ndarray]:
    """The sample's arrays, selected from the full training and test sets."""
    train_indices = select_balanced(y_train, train_per_class)
    test_indices = select_balanced(y_test, test_per_class)
    return {
        "x_train": x_train[train_indices],
        "y_train": y_train[train_indices],
        "x_test": x_test[test_indices],
        "y_test": y_test[test_indices],
        # The full sets have fewer than 65,536 images, so the indices fit in uint16.
        "train_indices": train_indices.astype(np.uint16),
        "test_indices": test_indices.astype(np.uint16),
    }


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """An MD5 digest of the sample's arrays: names, dtypes, shapes and contents."""
    digest = hashlib.md5(usedforsecurity=False)
    for key in SAMPLE_KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as an .npz that np.load reads, deterministically (fixed timestamps, fixed deflate level)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in SAMPLE_KEYS:
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a sample .npz (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def load_sample(spec: DatasetSpec) -> tuple[dict[str, np.ndarray], Path]:
    """The bundled sample's arrays, checked against SAMPLE_DIGESTS, and the path they came from."""
    path = sample_path(spec)
    if path is None:
        raise DatasetError(f"mnist_loader has no bundled {spec.title} sample.")
    rebuild_hint = (
        f"Reinstall minicnn, or rebuild the sample with "
        f"`python -m mnist_loader.build_sample --dataset {spec.name} --data-dir DIR` from the full files."
    )
    try:
        arrays = read_npz(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: the bundled {spec.title} sample is missing. {rebuild_hint}", path=path) from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: the bundled sample cannot be read ({error}). {rebuild_hint}", path=path) from None
    missing = [key for key in SAMPLE_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{path}: the bundled sample lacks {', '.join(missing)}. {rebuild_hint}", path=path)
    actual = arrays_digest(arrays)
    expected = SAMPLE_DIGESTS.get(spec.name)
    if actual != expected:
        raise DatasetError(
            f"{path}: checksum mismatch: the bundled sample's arrays have digest {actual}, expected {expected}. "
            f"{rebuild_hint}",
            path=path,
        )
    return arrays, path

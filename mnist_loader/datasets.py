"""Loading MNIST and Fashion-MNIST: finding the files, reading and checking them, falling back to the sample.

Sources, in order:
  1. an explicit `data_dir` (an error if the files are not there: never a silent fallback);
  2. $MINICNN_DATA, a directory holding mnist/ and fashion-mnist/;
  3. the per-user cache ($MINICNN_CACHE, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn);
  4. a download from the public mirrors into the cache;
  5. the small sample bundled with the package (MNIST only), with a SampleDataWarning.
Every file's decompressed payload is checked against its known MD5, whichever source it came from.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .catalog import FASHION_MNIST, MNIST, NUM_CLASSES, DatasetSpec, FileSpec, get_spec
from .checksums import md5_hex, verify_md5
from .download import DEFAULT_TIMEOUT, download_file, payload_limit, resolve_mirrors
from .errors import DataNotFound, DatasetError, SampleDataWarning
from .idx import parse_idx, read_payload
from .locations import (
    DATA_ENV,
    cache_dir,
    candidate_dirs,
    data_env_root,
    describe_expected_files,
    files_in,
    find_complete_dir,
)
from .sample import load_sample, sample_path

# Values of LoadedDataset.source / DataFiles.source.
SOURCE_DATA_DIR = "data_dir"
SOURCE_ENV = DATA_ENV
SOURCE_CACHE = "cache"
SOURCE_DOWNLOAD = "download"
SOURCE_SAMPLE = "sample"

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class DataFiles:
    """Where the four files of a data set were found (or downloaded to)."""

    spec: DatasetSpec
    source: str  # SOURCE_DATA_DIR, SOURCE_ENV, SOURCE_CACHE or SOURCE_DOWNLOAD
    directory: Path
    paths: dict[str, Path]  # by role: "train_images", "train_labels", "test_images", "test_labels"
    urls: dict[str, str] = field(default_factory=dict)  # by role, for the files downloaded just now


@dataclass(frozen=True, eq=False)
class LoadedDataset:
    """A loaded data set and where it came from."""

    spec: DatasetSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # SOURCE_DATA_DIR, SOURCE_ENV, SOURCE_CACHE, SOURCE_DOWNLOAD or SOURCE_SAMPLE
    location: Path  # the directory holding the files, or the sample's .npz

    @property
    def is_sample(self) -> bool:
        """True if this is the small bundled sample, not the full data set."""
        return self.source == SOURCE_SAMPLE

    def as_tuples(self) -> tuple[Split, Split]:
        """`(x_train, y_train), (x_test, y_test)`, like keras.datasets."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)

    def describe(self) -> str:
        """One line for logs, e.g. "full MNIST from /data/mnist (MINICNN_DATA)" or "bundled MNIST sample ..."."""
        if self.is_sample:
            return (
                f"bundled {self.spec.title} sample ({len(self.x_train):,} train / {len(self.x_test):,} test images) "
                f"from {self.location}"
            )
        how = {SOURCE_DOWNLOAD: "downloaded to the cache"}.get(self.source, self.source)
        return f"full {self.spec.title} from {self.location} ({how})"


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    verbose: bool = True,
    download: bool = True,
    allow_sample: bool = True,
    mirrors: str | Sequence[str] | None = None,
) -> tuple[Split, Split]:
    """Load MNIST as `(x_train, y_train), (x_test, y_test)`: uint8 images (N, 28, 28) and uint8 labels (N,).

    `data_dir`: a directory holding the four files (gzipped or not), or holding an `mnist/` directory with
    them. Left as None, the files are looked for in $MINICNN_DATA, then in the cache, then downloaded; if all
    that fails the bundled 10,000 + 2,000 image sample is returned with a SampleDataWarning (unless
    `allow_sample=False`). `verbose` prints where the data came from and download progress to stderr.
    Use `load_dataset("mnist")` to also learn which source was used.
    """
    return load_dataset(
        MNIST.name, data_dir, verbose=verbose, download=download, allow_sample=allow_sample, mirrors=mirrors
    ).as_tuples()


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    *,
    verbose: bool = True,
    download: bool = True,
    allow_sample: bool = True,
    mirrors: str | Sequence[str] | None = None,
) -> tuple[Split, Split]:
    """Load Fashion-MNIST as `(x_train, y_train), (x_test, y_test)`, like `load_mnist`.

    There is no bundled Fashion-MNIST sample: with no data found and no download possible it raises
    DataNotFound. `allow_sample` is accepted for symmetry with `load_mnist`.
    """
    return load_dataset(
        FASHION_MNIST.name, data_dir, verbose=verbose, download=download, allow_sample=allow_sample, mirrors=mirrors
    ).as_tuples()


def load_dataset(
    name: str = "mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    verbose: bool = True,
    download: bool = True,
    allow_sample: bool = True,
    mirrors: str | Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    report_source: bool = True,
) -> LoadedDataset:
    """Load "mnist" or "fashion-mnist" and report where it came from (see the module docstring for the order).

    Raises DatasetError if a file is damaged or `data_dir`/$MINICNN_DATA is wrong, and DataNotFound if no
    source has the data and there is no sample to fall back to. `report_source=False` leaves out the verbose
    line saying where the data came from (`.describe()`), for a program that prints it itself.
    """
    spec = get_spec(name)
    for attempt in (1, 2):
        try:
            files = locate_files(spec, data_dir, download=download, mirrors=mirrors, timeout=timeout, verbose=verbose)
        except DataNotFound as error:
            return _fall_back_to_sample(spec, error, allow_sample=allow_sample, verbose=verbose and report_source)
        try:
            arrays = read_verified_files(spec, files.paths)
            break
        except DatasetError as error:
            damaged_cache_file = (
                files.source in (SOURCE_CACHE, SOURCE_DOWNLOAD)
                and error.path is not None
                and Path(error.path).parent == files.directory
            )
            if attempt == 2 or not damaged_cache_file or not download:
                raise
            # Only verified files are put in the cache, so this one was damaged afterwards: fetch it again.
            warnings.warn(f"{error} Removing it from the cache to download it again.", stacklevel=_caller_stacklevel())
            Path(error.path).unlink(missing_ok=True)

    dataset = LoadedDataset(
        spec, arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"],
        source=files.source, location=files.directory,
    )
    if verbose and report_source:
        print(f"mnist_loader: {dataset.describe()}", file=sys.stderr)
    return dataset


def locate_files(
    name: str | DatasetSpec,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirrors: str | Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
) -> DataFiles:
    """Find the four files of a data set on disk, downloading the missing ones into the cache if allowed.

    This finds files but does not read or check them (`read_verified_files` does).
    Raises DatasetError if `data_dir` or $MINICNN_DATA is wrong, DataNotFound if no source has the files.
    """
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    expected = describe_expected_files(spec)

    if data_dir is not None:
        root = Path(data_dir).expanduser().resolve()
        if not root.is_dir():
            raise DatasetError(
                f"data_dir={root}: no such directory. Pass the directory that holds the {spec.title} files "
                f"({expected}), or leave data_dir unset to use {DATA_ENV}, the cache or a download.",
                path=root,
            )
        found = find_complete_dir(root, spec)
        if found is None:
            raise DatasetError(_missing_files_message(f"data_dir={root}", root, spec), path=root)
        return DataFiles(spec, SOURCE_DATA_DIR, *found)

    searched = ["no data_dir given"]
    env_root = data_env_root()
    if env_root is not None:
        env_root = env_root.resolve()
        if not env_root.is_dir():
            raise DatasetError(
                f"{DATA_ENV}={env_root}: no such directory. Set {DATA_ENV} to a directory holding "
                f"{MNIST.name}/ and {FASHION_MNIST.name}/, or unset it.",
                path=env_root,
            )
        found = find_complete_dir(env_root, spec)
        if found is not None:
            return DataFiles(spec, SOURCE_ENV, *found)
        searched.append(f"{DATA_ENV}={env_root} has no complete {spec.name}/ directory")
    else:
        searched.append(f"{DATA_ENV} is not set")

    cache = cache_dir(spec)
    paths = files_in(cache, spec)
    if len(paths) == len(spec.files):
        return DataFiles(spec, SOURCE_CACHE, cache, paths)
    missing = [file_spec for file_spec in spec.files if file_spec.role not in paths]
    if paths:
        searched.append(f"the cache {cache} lacks {', '.join(file_spec.filename for file_spec in missing)}")
    else:
        searched.append(f"the cache {cache} has none of its files")
    looked = "; ".join(searched)
    if not download:
        raise DataNotFound(f"{spec.title} not found ({looked}), and downloading is disabled.")

    urls = {}
    mirror_list = resolve_mirrors(spec, mirrors)
    for file_spec in missing:
        try:
            paths[file_spec.role], urls[file_spec.role] = download_file(
                spec, file_spec, cache, mirror_list, timeout=timeout, verbose=verbose
            )
        except DataNotFound as error:
            raise DataNotFound(f"{spec.title} not found ({looked}), and {error}") from None
        except OSError as error:  # e.g. the cache directory cannot be created
            raise DataNotFound(
                f"{spec.title} not found ({looked}), and it cannot be downloaded into {cache}: {error}. "
                f"Set MINICNN_CACHE to a writable directory."
            ) from None
    return DataFiles(spec, SOURCE_DOWNLOAD, cache, paths, urls)


def read_verified_files(spec: DatasetSpec, paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Read the four files of a data set and check them; return the arrays by role.

    Checks, in order: the IDX structure of each file; that images are N x 28 x 28 ubyte and labels are
    ubyte in 0-9; that each image file and its label file have the same count; the payload MD5s.
    (The MD5 comes last so the more specific problems are reported as such.) Files are read smallest
    first, so a damaged label file is reported without first decompressing 47 MB of training images.
    """
    arrays, digests = {}, {}
    for file_spec in sorted(spec.files, key=lambda file_spec: np.prod(file_spec.shape)):
        arrays[file_spec.role], digests[file_spec.role] = read_checked_file(spec, file_spec, paths[file_spec.role])
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DatasetError(
                f"{paths[f'{split}_images']} holds {len(images):,} images but {paths[f'{split}_labels']} holds "
                f"{len(labels):,} labels: these image and label files do not belong together. Replace them with "
                f"the matching pair from one copy of {spec.title}."
            )
    for file_spec in spec.files:
        verify_md5(digests[file_spec.role], spec, file_spec, paths[file_spec.role])
    return arrays


def read_checked_file(spec: DatasetSpec, file_spec: FileSpec, path: Path) -> tuple[np.ndarray, str]:
    """Read one file and check its structure and contents; return the array and its payload MD5.

    The MD5 is returned, not checked: compare it with `checksums.verify_md5`.
    """
    payload = read_payload(path, limit=payload_limit(file_spec))
    array = parse_idx(payload, path)
    _check_contents(spec, file_spec, array, path)
    return array, md5_hex(payload)


def _check_contents(spec: DatasetSpec, file_spec: FileSpec, array: np.ndarray, path: Path) -> None:
    """Raise DatasetError unless `array` has the dtype, shape and (for labels) values its role requires."""
    is_images = file_spec.role.endswith("images")
    expected_shape = "N x 28 x 28" if is_images else "N"
    shape_ok = array.shape[1:] == (28, 28) if is_images else array.ndim == 1
    if array.dtype != np.uint8 or not shape_ok:
        kind = "images" if is_images else "labels"
        raise DatasetError(
            f"{path}: expected {spec.title} {kind}, an IDX file of {expected_shape} unsigned bytes, but it holds "
            f"{' x '.join(map(str, array.shape))} {array.dtype}. Check that this is the right file "
            f"({file_spec.filename}); if it is, replace it with a fresh copy.",
            path=path,
        )
    if not is_images and len(array) and array.max() >= NUM_CLASSES:
        bad = np.flatnonzero(array >= NUM_CLASSES)
        raise DatasetError(
            f"{path}: labels outside 0-{NUM_CLASSES - 1}: {len(bad):,} of {len(array):,} labels are out of range "
            f"(the first is {int(array[bad[0]])} at index {int(bad[0])}). The file is damaged or is not a "
            f"{spec.title} label file: replace it with a fresh copy.",
            path=path,
        )


def _missing_files_message(what: str, root: Path, spec: DatasetSpec) -> str:
    """Explain which files were expected where, for a directory that lacks some of them."""
    looked_in = " and ".join(str(directory) for directory in candidate_dirs(root, spec))
    present = max((files_in(directory, spec) for directory in candidate_dirs(root, spec)), key=len)
    missing = [file_spec.filename for file_spec in spec.files if file_spec.role not in present]
    return (
        f"{what}: the {spec.title} files are not there (looked in {looked_in}; missing {', '.join(missing)}). "
        f"Point it at the directory holding {describe_expected_files(spec)}."
    )


def _fall_back_to_sample(spec: DatasetSpec, error: DataNotFound, *, allow_sample: bool, verbose: bool) -> LoadedDataset:
    """Return the bundled sample with a one-line warning, or re-raise `error` if there is no sample to use."""
    how_to_get = (
        f"set {DATA_ENV} to a directory holding {spec.name}/ with its four files, "
        f"or run once with internet access to download it into {cache_dir(spec)}"
    )
    if not allow_sample or sample_path(spec) is None:
        reason = "the bundled sample is disabled (allow_sample=False)" if allow_sample is False else (
            f"mnist_loader has no bundled {spec.title} sample"
        )
        raise DataNotFound(f"{error}\n{reason}. To get {spec.title}, {how_to_get}.") from None
    arrays, path = load_sample(spec)
    warnings.warn(
        f"full {spec.title} not found and not downloadable; using the bundled sample "
        f"({len(arrays['x_train']):,} train / {len(arrays['x_test']):,} test images). "
        f"For the full set, {how_to_get}.",
        SampleDataWarning,
        stacklevel=_caller_stacklevel(),
    )
    dataset = LoadedDataset(
        spec, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        source=SOURCE_SAMPLE, location=path,
    )
    if verbose:
        print(f"mnist_loader: {dataset.describe()}", file=sys.stderr)
    return dataset


def _caller_stacklevel() -> int:
    """The `stacklevel` for warnings.warn, called from the caller's frame, that points at the first frame
    outside this package (so the warning shows the user's line, however deep inside the package it is issued)."""
    package_dir = str(Path(__file__).resolve().parent) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package_dir):
        frame, level = frame.f_back, level + 1
    return level

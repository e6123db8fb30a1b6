"""Tests of mnist_loader: the IDX reader, the checks on every file, where data comes from, the offline
sample, the helpers and the command line. Downloads are tested in test_mnist_loader_download.py.

The full data sets are found as conftest.py finds them (where the loader would, or in shared/data beside the
repository). Damaged files are made from the real ones, in tmp_path.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import closed_port_url, real_data_dir

import mnist_loader
from mnist_loader import (
    DataNotFound,
    DatasetError,
    SampleDataWarning,
    encode_idx,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    locate_files,
    parse_idx,
    read_idx,
    to_float32,
    train_val_split,
)
from mnist_loader import sample as sample_module
from mnist_loader.__main__ import main as cli_main
from mnist_loader.build_sample import build_sample, differences
from mnist_loader.build_sample import main as build_sample_main
from mnist_loader.catalog import MNIST
from mnist_loader.locations import cache_root

REPO = Path(__file__).resolve().parents[1]

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FILENAMES = [file_spec.filename for file_spec in MNIST.files]


@pytest.fixture
def mnist_dir() -> Path:
    """The directory with the four real MNIST .gz files."""
    return real_data_dir("mnist", gzipped=True)


@pytest.fixture
def fashion_dir() -> Path:
    """The directory with the four real Fashion-MNIST .gz files."""
    return real_data_dir("fashion-mnist", gzipped=True)



@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """Every test gets an empty cache, no MINICNN_DATA, and mirrors that refuse connections (no real network)."""
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_MNIST_MIRRORS", closed_port_url())
    monkeypatch.setenv("MINICNN_FASHION_MNIST_MIRRORS", closed_port_url())


def gunzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def gz(payload: bytes) -> bytes:
    """Gzip quickly (level 1): the tests only need valid gzip, not small files."""
    return gzip.compress(payload, compresslevel=1, mtime=0)


def copy_with(mnist_dir: Path, target: Path, replacements: dict[str, bytes]) -> Path:
    """A copy of the MNIST directory in `target` (symlinks to the real files) with some files replaced."""
    target.mkdir(parents=True)
    for filename in FILENAMES:
        if filename in replacements:
            (target / filename).write_bytes(replacements[filename])
        else:
            (target / filename).symlink_to(mnist_dir / filename)
    return target


# --- the IDX reader ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_of_every_type(tmp_path, dtype, compress):
    offset = 0 if dtype == np.uint8 else 12  # negative values too, where the type has them
    array = (np.arange(24) - offset).reshape(2, 3, 4).astype(dtype)
    payload = encode_idx(array)
    path = tmp_path / ("data.idx.gz" if compress else "data.idx")
    path.write_bytes(gz(payload) if compress else payload)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.dtype.isnative
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_idx_header_is_read_from_the_format(mnist_dir):
    payload = gunzip(mnist_dir / "t10k-images-idx3-ubyte.gz")
    assert payload[:4] == b"\x00\x00\x08\x03"  # ubyte, 3 dimensions
    images = parse_idx(payload)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert encode_idx(images) == payload


def test_raw_and_gzipped_files_read_the_same(tmp_path, mnist_dir):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gunzip(mnist_dir / "t10k-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(read_idx(raw), read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"))


def _with_byte(data: bytes, index: int, value: int) -> bytes:
    return data[:index] + bytes([value]) + data[index + 1:]


# Each case: a name, how to damage the decompressed t10k-labels payload (or the .gz bytes), and what the
# error message must say.
IDX_DAMAGE = {
    "wrong magic": (lambda payload: _with_byte(payload, 0, 0x12), None, "wrong magic number 0x12000801"),
    "unsupported dtype": (lambda payload: _with_byte(payload, 2, 0x0A), None, "unsupported IDX data type code 0x0A"),
    "extra bytes": (lambda payload: payload + b"\x00" * 7, None, "dimensions disagree with the file length"),
    "dimension too small": (lambda payload: payload[:4] + (9999).to_bytes(4, "big") + payload[8:], None,
                            "dimensions disagree with the file length"),
    "truncated file": (lambda payload: payload[:5000], None, "truncated file"),
    "truncated header": (lambda payload: payload[:6], None, "truncated file"),
    "truncated gzip stream": (None, lambda gz: gz[: len(gz) // 2], "truncated gzip stream"),
    "damaged gzip data": (None, lambda gz: gz[:-8] + bytes(8), "damaged gzip data"),
}


@pytest.mark.parametrize("case", IDX_DAMAGE)
def test_idx_reader_rejects_damaged_files(tmp_path, mnist_dir, case):
    damage_payload, damage_gzip, message = IDX_DAMAGE[case]
    payload = gunzip(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    if damage_payload:
        payload = damage_payload(payload)
    compressed = gz(payload)
    if damage_gzip:
        compressed = damage_gzip(compressed)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(compressed)
    with pytest.raises(DatasetError, match=message) as caught:
        read_idx(path)
    assert str(path) in str(caught.value)
    assert "fresh copy" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_raw_truncated_file_is_rejected(tmp_path, mnist_dir):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(gunzip(mnist_dir / "t10k-images-idx3-ubyte.gz")[:-1])
    with pytest.raises(DatasetError, match=r"truncated file: the header declares 10000 x 28 x 28 ubyte"):
        read_idx(path)


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        read_idx(tmp_path / "nothing.gz")


# --- checks on a whole data set, through load_mnist(data_dir=...) ---------------------------------------

def _labels_with(mnist_dir: Path, index: int, value: int) -> bytes:
    payload = bytearray(gunzip(mnist_dir / "t10k-labels-idx1-ubyte.gz"))
    payload[8 + index] = value
    return gz(bytes(payload))


DATASET_DAMAGE = {
    # name: (file to replace, function of mnist_dir giving its new bytes, expected message)
    "wrong magic": ("t10k-images-idx3-ubyte.gz",
                    lambda d: gz(b"\x01" + gunzip(d / "t10k-images-idx3-ubyte.gz")[1:]),
                    "wrong magic number"),
    "unsupported dtype": ("t10k-labels-idx1-ubyte.gz",
                          lambda d: gz(_with_byte(gunzip(d / "t10k-labels-idx1-ubyte.gz"), 2, 0x07)),
                          "unsupported IDX data type code 0x07"),
    "dimensions disagree": ("t10k-labels-idx1-ubyte.gz",
                            lambda d: gz(gunzip(d / "t10k-labels-idx1-ubyte.gz") + b"\x01"),
                            "dimensions disagree with the file length"),
    "truncated gzip stream": ("t10k-images-idx3-ubyte.gz",
                              lambda d: (d / "t10k-images-idx3-ubyte.gz").read_bytes()[:100_000],
                              "truncated gzip stream"),
    "labels outside 0-9": ("t10k-labels-idx1-ubyte.gz", lambda d: _labels_with(d, 1234, 10),
                           r"labels outside 0-9: 1 of 10,000 labels are out of range "
                           r"\(the first is 10 at index 1234\)"),
    "images that are not 28 x 28": ("t10k-images-idx3-ubyte.gz",
                                    lambda d: gz(encode_idx(np.zeros((10000, 784), np.uint8))),
                                    "expected MNIST images"),
    "labels that are not ubyte": ("t10k-labels-idx1-ubyte.gz",
                                  lambda d: gz(encode_idx(np.zeros(10000, np.int32))),
                                  "expected MNIST labels"),
    "checksum mismatch": ("t10k-labels-idx1-ubyte.gz",
                          lambda d: _labels_with(d, 0, (int(read_idx(d / "t10k-labels-idx1-ubyte.gz")[0]) + 1) % 10),
                          "checksum mismatch: its decompressed data has MD5"),
}


@pytest.mark.parametrize("case", DATASET_DAMAGE)
def test_load_rejects_a_damaged_file(tmp_path, mnist_dir, case):
    filename, make_bytes, message = DATASET_DAMAGE[case]
    directory = copy_with(mnist_dir, tmp_path / "mnist", {filename: make_bytes(mnist_dir)})
    with pytest.raises(DatasetError, match=message) as caught:
        load_mnist(data_dir=directory, verbose=False)
    assert str(directory / filename) in str(caught.value)
    assert "fresh copy" in str(caught.value) or "download it again" in str(caught.value)


def test_image_and_label_counts_must_agree(tmp_path, mnist_dir):
    # A real, valid label file, but the training one: 60,000 labels for 10,000 test images.
    directory = copy_with(mnist_dir, tmp_path / "mnist", {
        "t10k-labels-idx1-ubyte.gz": (mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes(),
    })
    with pytest.raises(DatasetError, match=r"holds 10,000 images but .* holds 60,000 labels") as caught:
        load_mnist(data_dir=directory, verbose=False)
    assert "t10k-images-idx3-ubyte.gz" in str(caught.value) and "t10k-labels-idx1-ubyte.gz" in str(caught.value)


def test_damaged_file_is_never_replaced_by_the_sample(tmp_path, mnist_dir, monkeypatch):
    damaged = {"t10k-labels-idx1-ubyte.gz": _labels_with(mnist_dir, 0, 99)}
    directory = copy_with(mnist_dir, tmp_path / "data" / "mnist", damaged)
    monkeypatch.setenv("MINICNN_DATA", str(directory.parent))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleDataWarning)
        with pytest.raises(DatasetError, match="labels outside 0-9"):
            load_mnist(verbose=False)


# --- the full data sets ------------------------------------------------------------------------------------

def test_load_mnist_from_shared_data(mnist_dir, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(mnist_dir.parent))
    started = time.perf_counter()
    dataset = load_dataset("mnist", verbose=False)
    elapsed = time.perf_counter() - started
    (x_train, y_train), (x_test, y_test) = dataset.as_tuples()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert np.bincount(y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert dataset.source == "MINICNN_DATA" and not dataset.is_sample
    assert dataset.location == mnist_dir.resolve()
    assert dataset.describe() == f"full MNIST from {mnist_dir.resolve()} (MINICNN_DATA)"
    assert x_train.max() == 255 and x_train.min() == 0
    assert elapsed < 5, f"loading MNIST took {elapsed:.1f} s"


def test_load_fashion_mnist_from_shared_data(fashion_dir):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir=fashion_dir.parent, verbose=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_verbose_load_says_where_the_data_came_from(mnist_dir, capsys):
    load_mnist(data_dir=mnist_dir, verbose=True)
    assert f"mnist_loader: full MNIST from {mnist_dir.resolve()} (data_dir)" in capsys.readouterr().err


def test_quiet_load_prints_nothing(mnist_dir, capsys):
    load_mnist(data_dir=mnist_dir, verbose=False)
    assert capsys.readouterr() == ("", "")


# --- where the files are looked for -------------------------------------------------------------------------

def test_data_dir_may_hold_the_files_or_a_dataset_directory(mnist_dir):
    for data_dir in (mnist_dir, mnist_dir.parent, str(mnist_dir)):
        files = locate_files("mnist", data_dir)
        assert files.source == "data_dir"
        assert files.directory == mnist_dir.resolve()
        assert sorted(path.name for path in files.paths.values()) == sorted(FILENAMES)


def test_decompressed_files_are_found_too(tmp_path, mnist_dir):
    directory = tmp_path / "raw"
    directory.mkdir()
    for filename in FILENAMES:
        (directory / filename.removesuffix(".gz")).write_bytes(gunzip(mnist_dir / filename))
    dataset = load_dataset("mnist", directory, verbose=False)
    assert np.bincount(dataset.y_test).tolist() == MNIST_TEST_COUNTS


def test_data_dir_wins_over_the_environment_and_the_cache(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "elsewhere"))  # would be an error if it were looked at
    assert locate_files("mnist", mnist_dir).source == "data_dir"


def test_environment_wins_over_the_cache(tmp_path, mnist_dir, monkeypatch):
    copy_with(mnist_dir, cache_root() / "mnist", {})
    monkeypatch.setenv("MINICNN_DATA", str(mnist_dir.parent))
    files = locate_files("mnist")
    assert files.source == "MINICNN_DATA" and files.directory == mnist_dir.resolve()


def test_cache_is_used_when_the_environment_lacks_the_dataset(tmp_path, mnist_dir, monkeypatch):
    (tmp_path / "empty-data").mkdir()
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "empty-data"))
    copy_with(mnist_dir, tmp_path / "cache" / "mnist", {})
    dataset = load_dataset("mnist", verbose=False)
    assert dataset.source == "cache" and dataset.location == (tmp_path / "cache" / "mnist").resolve()
    assert np.bincount(dataset.y_train).tolist() == MNIST_TRAIN_COUNTS


def test_a_wrong_data_dir_is_an_error_not_a_fallback(tmp_path):
    with pytest.raises(DatasetError, match="no such directory") as caught:
        load_mnist(data_dir=tmp_path / "missing", verbose=False)
    assert not isinstance(caught.value, DataNotFound)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="the MNIST files are not there") as caught:
        load_mnist(data_dir=tmp_path / "empty", verbose=False)
    assert "train-images-idx3-ubyte.gz" in str(caught.value) and str(tmp_path / "empty") in str(caught.value)
    assert not isinstance(caught.value, DataNotFound)


def test_a_data_dir_missing_one_file_names_it(tmp_path, mnist_dir):
    directory = copy_with(mnist_dir, tmp_path / "mnist", {})
    (directory / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"missing t10k-labels-idx1-ubyte\.gz\)"):
        load_mnist(data_dir=directory, verbose=False)


def test_a_wrong_minicnn_data_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "typo"))
    with pytest.raises(DatasetError, match="MINICNN_DATA=.*typo: no such directory"):
        load_mnist(verbose=False)


def test_cache_directory_follows_xdg_and_home(tmp_path, monkeypatch):
    monkeypatch.delenv("MINICNN_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "minicnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "minicnn"


# --- offline: the bundled sample ----------------------------------------------------------------------------

def test_offline_with_no_data_falls_back_to_the_sample(tmp_path, capsys):
    started = time.perf_counter()
    with pytest.warns(SampleDataWarning, match="bundled sample.*MINICNN_DATA") as record:
        dataset = load_dataset("mnist", verbose=True)
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"the offline fallback took {elapsed:.1f} s"
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert record[0].filename == __file__  # the warning points at the caller, not into mnist_loader
    assert dataset.source == "sample" and dataset.is_sample
    assert dataset.describe().startswith("bundled MNIST sample (10,000 train / 2,000 test images)")
    assert dataset.x_train.shape == (10000, 28, 28) and dataset.x_test.shape == (2000, 28, 28)
    assert dataset.x_train.dtype == dataset.y_train.dtype == np.uint8
    assert np.bincount(dataset.y_train).tolist() == [1000] * 10
    assert np.bincount(dataset.y_test).tolist() == [200] * 10
    assert "Connection refused" in capsys.readouterr().err  # verbose says why
    # Nothing half-downloaded was left in the cache.
    assert not any(path.is_file() for path in (tmp_path / "cache").rglob("*"))


def test_load_mnist_returns_the_sample_like_keras(recwarn):
    (x_train, y_train), (x_test, y_test) = load_mnist(verbose=False)
    assert (len(x_train), len(y_train), len(x_test), len(y_test)) == (10000, 10000, 2000, 2000)
    assert any(issubclass(warning.category, SampleDataWarning) for warning in recwarn)


def test_no_download_goes_straight_to_the_sample(monkeypatch):
    monkeypatch.setenv("MINICNN_MNIST_MIRRORS", "http://example.invalid/")  # must not be contacted
    with pytest.warns(SampleDataWarning):
        dataset = load_dataset("mnist", download=False, verbose=False)
    assert dataset.is_sample


def test_offline_without_the_sample_is_a_clear_error():
    message = r"(?s)MNIST not found.*Connection refused.*allow_sample=False.*MINICNN_DATA"
    with pytest.raises(DataNotFound, match=message):
        load_mnist(allow_sample=False, verbose=False)


def test_offline_fashion_mnist_is_a_clear_error():
    message = r"(?s)Fashion-MNIST not found.*no bundled Fashion-MNIST sample.*MINICNN_DATA"
    with pytest.raises(DataNotFound, match=message):
        load_fashion_mnist(verbose=False)


def test_bundled_sample_is_small_and_rebuilds_identically(mnist_dir):
    bundled_path = sample_module.sample_path(MNIST)
    size = bundled_path.stat().st_size
    assert size <= 2_000_000, f"the bundled sample is {size:,} bytes"
    bundled = sample_module.read_npz(bundled_path)
    rebuilt = build_sample("mnist", mnist_dir.parent)
    assert differences(rebuilt, bundled) == []
    assert sample_module.arrays_digest(rebuilt) == sample_module.SAMPLE_DIGESTS["mnist"]
    # The sample is real MNIST: the recorded indices point at the same images in the full files.
    full_images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(full_images[bundled["test_indices"]], bundled["x_test"])


def test_build_sample_script_writes_and_checks(tmp_path, mnist_dir, capsys):
    output = tmp_path / "sample.npz"
    assert build_sample_main(["--data-dir", str(mnist_dir), "--output", str(output)]) == 0
    assert differences(sample_module.read_npz(output), sample_module.read_npz(sample_module.sample_path(MNIST))) == []
    assert build_sample_main(["--data-dir", str(mnist_dir), "--check"]) == 0
    assert "identical to a fresh build" in capsys.readouterr().out


def test_a_damaged_sample_is_rejected(tmp_path, monkeypatch):
    arrays = sample_module.read_npz(sample_module.sample_path(MNIST))
    arrays["y_test"] = arrays["y_test"].copy()
    arrays["y_test"][0] ^= 1
    np.savez(tmp_path / "mnist_sample.npz", **arrays)
    monkeypatch.setattr(sample_module, "SAMPLE_DIR", tmp_path)
    with pytest.raises(DatasetError, match="bundled sample's arrays have digest"):
        load_mnist(verbose=False)


# --- helpers -------------------------------------------------------------------------------------------------

def test_to_float32_scales_to_unit_interval():
    images = np.array([[[0, 128, 255]]], dtype=np.uint8)
    scaled = to_float32(images)
    assert scaled.dtype == np.float32 and scaled.shape == (1, 1, 3)
    np.testing.assert_array_equal(scaled, images.astype("float32") / 255)
    assert scaled.min() == 0.0 and scaled.max() == 1.0
    with_channel = to_float32(np.zeros((5, 28, 28), np.uint8), add_channel_axis=True)
    assert with_channel.shape == (5, 28, 28, 1) and with_channel.dtype == np.float32
    with pytest.raises(TypeError, match="uint8"):
        to_float32(scaled)


def test_train_val_split_is_seeded_and_partitions():
    x = np.arange(1000).reshape(100, 10)
    y = np.arange(100)
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y, val_fraction=0.2, seed=3)
    assert len(x_val) == len(y_val) == 20 and len(x_train) == len(y_train) == 80
    assert sorted(np.concatenate([y_train, y_val]).tolist()) == list(range(100))
    np.testing.assert_array_equal(x_val[:, 0] // 10, y_val)  # images stay with their labels
    assert np.all(np.diff(y_train) > 0)  # original order kept
    (_, y_train_again), (_, y_val_again) = train_val_split(x, y, val_fraction=0.2, seed=3)
    np.testing.assert_array_equal(y_val, y_val_again)
    (_, _), (_, y_val_other) = train_val_split(x, y, val_fraction=0.2, seed=4)
    assert not np.array_equal(y_val, y_val_other)
    with pytest.raises(ValueError):
        train_val_split(x, y, val_fraction=1.0)
    with pytest.raises(ValueError):
        train_val_split(x, y[:-1], val_fraction=0.1)


def test_public_api_is_exported():
    for name in ("load_mnist", "load_fashion_mnist", "load_dataset", "to_float32", "train_val_split",
                 "read_idx", "DatasetError", "SampleDataWarning", "FASHION_MNIST_CLASSES"):
        assert hasattr(mnist_loader, name), name
    assert issubclass(mnist_loader.DatasetError, ValueError)


# --- python -m mnist_loader ------------------------------------------------------------------------------

def test_cli_verifies_every_file_and_plots(tmp_path, mnist_dir, capsys):
    plot = tmp_path / "grid.png"
    assert cli_main(["--data-dir", str(mnist_dir), "--plot", str(plot)]) == 0
    output = capsys.readouterr().out
    assert f"MNIST: full data set in {mnist_dir.resolve()} (data_dir)" in output
    for file_spec in MNIST.files:
        assert f"{file_spec.filename}  source: data_dir  OK md5 {file_spec.payload_md5}" in output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_a_damaged_file(tmp_path, mnist_dir, capsys):
    directory = copy_with(mnist_dir, tmp_path / "mnist", {"t10k-labels-idx1-ubyte.gz": _labels_with(mnist_dir, 5, 200)})
    assert cli_main(["--data-dir", str(directory)]) == 1
    output = capsys.readouterr().out
    assert "t10k-labels-idx1-ubyte.gz  source: data_dir  FAILED" in output and "labels outside 0-9" in output
    assert "1 of 4 files failed verification" in output


def test_cli_offline_reports_the_sample(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(["--no-download", "--plot"]) == 0
    output = capsys.readouterr().out
    assert "full data set not found" in output and "bundled sample" in output
    assert (tmp_path / "mnist-examples.png").is_file()


def test_cli_runs_as_a_module(fashion_dir):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_loader", "--dataset", "fashion-mnist", "--data-dir", str(fashion_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" OK md5 ") == 4

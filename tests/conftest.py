"""Shared test helpers: where the real data sets are, and a port nothing listens on.

The full MNIST and Fashion-MNIST are looked for where mnist_loader looks without downloading ($MINICNN_DATA,
then the per-user cache: $MINICNN_CACHE, $XDG_CACHE_HOME/minicnn or ~/.cache/minicnn), then in ../shared/data
beside the repository (CI's layout). pytest's header says what was found; a test that needs a data set that was
not found is skipped with where it looked and how to get it, and the summary repeats how.
"""
import signal
import socket
from pathlib import Path

import pytest

# A run started with SIGINT ignored (nohup, or a background job of a shell without job control) would leave the
# Ctrl+C tests nothing to catch, here and in the train.py processes they start (an ignored signal stays ignored
# across exec): give this process Python's own handler back (a handled signal is reset to the default at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # CI's layout
DATASETS = ("mnist", "fashion-mnist")
NOT_FOUND = "not found"  # in every skip reason for missing data


def how_to_get(name):
    option = "" if name == "mnist" else f" --dataset {name}"
    return (f"run `python -m mnist_loader{option}` once (downloads it into the cache) or set MINICNN_DATA to a "
            f"directory holding {name}/")


def find_real_data(name, shared=SHARED_DATA):
    """(directory, how it was found) for the full data set `name`, or (None, the skip reason)."""
    import os

    from mnist_loader import DataNotFound, DatasetError, locate_files
    from mnist_loader.catalog import get_spec
    from mnist_loader.locations import DATA_ENV, cache_dir, find_complete_dir

    spec = get_spec(name)
    missing = f"full {spec.title} {NOT_FOUND}"
    try:
        files = locate_files(spec, download=False, verbose=False)
        return files.directory, files.source
    except DataNotFound:
        pass
    except DatasetError as error:  # $MINICNN_DATA names no directory: the loader would refuse it too
        return None, f"{missing}: {error}"
    found = find_complete_dir(shared, spec)
    if found is not None:
        return found[0], "beside the repository"
    environment = f"${DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else f"${DATA_ENV} (not set)"
    return None, (f"{missing} (looked in {environment}, the cache {cache_dir(spec)} and {shared / name}): "
                  f"{how_to_get(name)}")


# Looked up once, before any test changes the environment.
REAL_DATA = {name: find_real_data(name) for name in DATASETS}


def real_data_dir(name="mnist", gzipped=False):
    """The directory holding the full data set, or a skip that says where it was looked for and what to do.
    ``gzipped``: for a test that reads the .gz files themselves, in a directory named after the data set."""
    directory, how = REAL_DATA[name]
    if directory is None:
        pytest.skip(how)
    if gzipped:
        from mnist_loader.catalog import get_spec
        wanted = [file_spec.filename for file_spec in get_spec(name).files]
        if directory.name != name or not all((directory / filename).is_file() for filename in wanted):
            pytest.skip(f"this test reads the gzipped files of {directory} and needs them in a folder named {name}/")
    return directory


def pytest_report_header(config):
    return [f"data: {name} from {directory} ({how})" if directory else f"data: {how}"
            for name, (directory, how) in REAL_DATA.items()]


def pytest_terminal_summary(terminalreporter):
    from mnist_loader.catalog import get_spec

    reasons = [str(report.longrepr[2]) for report in terminalreporter.stats.get("skipped", [])
               if isinstance(report.longrepr, tuple)]
    for name in DATASETS:
        count = sum(f"full {get_spec(name).title} {NOT_FOUND}" in reason for reason in reasons)
        if count:
            tests = "1 test was" if count == 1 else f"{count} tests were"
            terminalreporter.write_line(f"{tests} skipped without the full {get_spec(name).title}: "
                                        f"{how_to_get(name)}", yellow=True)


@pytest.fixture(scope="session")
def mnist():
    """Full MNIST as float32 NHWC in [0, 1]: ((x_train, y_train), (x_test, y_test))."""
    import mnist_loader
    directory = real_data_dir("mnist")
    (x_train, y_train), (x_test, y_test) = mnist_loader.load_mnist(data_dir=directory, verbose=False)
    return ((mnist_loader.to_float32(x_train, add_channel_axis=True), y_train),
            (mnist_loader.to_float32(x_test, add_channel_axis=True), y_test))


def png_header_only(width, height):
    """A PNG whose header claims width x height pixels, with almost no data: decoding it would need gigabytes
    (a decompression bomb; refused from the header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def closed_port_url():
    """A URL on 127.0.0.1 whose port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def digit_models(tmp_path_factory):
    """A models folder with a small default CNN trained for one quick epoch on 4,000 images of mnist_loader's
    bundled sample (always there, offline): mnist-default.npz (plus a lenet5 as a second choice). Good enough
    to read a clearly drawn digit; made once per test session, never committed."""
    import numpy as np

    import minicnn

    folder = tmp_path_factory.mktemp("models")
    sample = np.load(REPO / "mnist_loader" / "sample" / "mnist_sample.npz")
    x = (sample["x_train"][:4000].astype(np.float32) / 255)[..., None]
    y = sample["y_train"][:4000]
    for name, build in (("default", minicnn.default_cnn), ("lenet5", minicnn.lenet5)):
        model = build(seed=0)
        model.compile("adam")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        model.save(folder / f"mnist-{name}.npz", metadata={"data": "4,000 images of the bundled MNIST sample",
                                                             "training": "1 epoch (a test fixture)"})
    return folder

"""Shared test helpers: where the real data sets are."""
import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir():
    """$MINICNN_DATA if set, else ../shared/data beside the repository (as CI lays it out)."""
    configured = os.environ.get("MINICNN_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist():
    """Full MNIST from ../shared/data as float32 NHWC in [0, 1]: ((x_train, y_train), (x_test, y_test))."""
    import mnist_loader
    directory = shared_data_dir() / "mnist"
    if not directory.is_dir():
        pytest.skip(f"full MNIST not found at {directory} (set MINICNN_DATA)")
    (x_train, y_train), (x_test, y_test) = mnist_loader.load_mnist(data_dir=directory, verbose=False)
    return ((mnist_loader.to_float32(x_train, add_channel_axis=True), y_train),
            (mnist_loader.to_float32(x_test, add_channel_axis=True), y_test))


def closed_port_url():
    """A URL on 127.0.0.1 whose port nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"

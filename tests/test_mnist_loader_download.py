"""Tests of mnist_loader's download path, for real, against HTTP servers on 127.0.0.1.

A local server (http.server in a thread, on an ephemeral port) serves the real MNIST .gz files under
/good/, and broken variants under other prefixes: /missing/ (404), /error/ (500), /cut/ (the connection
closes halfway through the promised body), /short/ (a complete response holding half the file), /corrupt/
(a valid gzip of altered data), /garbage/ (damaged gzip bytes) and /stall/ (stops sending). Most tests
put three of the four files in the cache first, so only the small label file is downloaded.
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import closed_port_url, real_data_dir

from mnist_loader import DataNotFound, DatasetError, load_dataset, locate_files
from mnist_loader.__main__ import main as cli_main
from mnist_loader.catalog import MNIST

FILENAMES = [file_spec.filename for file_spec in MNIST.files]
LABELS = "t10k-labels-idx1-ubyte.gz"
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def real_files() -> dict[str, bytes]:
    """The bytes of the four real MNIST .gz files."""
    directory = real_data_dir("mnist", gzipped=True)
    return {filename: (directory / filename).read_bytes() for filename in FILENAMES}


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.routes[path] = (behaviour, body)`; any other path is a 404."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.requests.append(self.path)
        behaviour, body = self.server.routes.get(self.path, ("missing", b""))
        if behaviour == "missing":
            self.send_error(404)
            return
        if behaviour == "error":
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "ok":
            self.wfile.write(body)
        elif behaviour == "cut":  # promise the whole body, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif behaviour == "stall":  # send a little, then nothing until the test ends
            self.wfile.write(body[:100])
            self.wfile.flush()
            self.server.release.wait(10)
            self.close_connection = True

    def log_message(self, format, *args):  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def server(real_files):
    """A local HTTP server with the mirrors described in the module docstring; yields its base URL."""
    routes = {}
    for filename, body in real_files.items():
        payload = gzip.decompress(body)
        altered = bytearray(payload)
        altered[-1] ^= 0x01  # one pixel or label changed: still valid IDX, wrong checksum
        garbage = bytearray(body)
        garbage[len(garbage) // 2] ^= 0xFF
        routes[f"/good/{filename}"] = ("ok", body)
        routes[f"/error/{filename}"] = ("error", b"")
        routes[f"/cut/{filename}"] = ("cut", body)
        routes[f"/short/{filename}"] = ("ok", body[: len(body) // 2])
        routes[f"/corrupt/{filename}"] = ("ok", gzip.compress(bytes(altered), compresslevel=1))
        routes[f"/garbage/{filename}"] = ("ok", bytes(garbage))
        routes[f"/stall/{filename}"] = ("stall", body)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes, httpd.requests, httpd.release = routes, [], threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def url(server, prefix: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{prefix}/"



@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path, server):
    """An empty cache, no MINICNN_DATA, no real mirrors, and a fresh request log for every test."""
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("MINICNN_MNIST_MIRRORS", closed_port_url())
    monkeypatch.setenv("MINICNN_FASHION_MNIST_MIRRORS", closed_port_url())
    server.requests.clear()


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache" / "mnist"


@pytest.fixture
def cache_without_labels(cache, real_files) -> Path:
    """The MNIST cache holding every real file except t10k-labels, which is left to download."""
    cache.mkdir(parents=True)
    for filename in FILENAMES:
        if filename != LABELS:
            (cache / filename).write_bytes(real_files[filename])
    return cache


def cache_listing(cache: Path) -> list[str]:
    """Every file in the cache, hidden temporary files included."""
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


def test_download_tries_mirrors_in_turn_and_fills_the_cache(server, cache, real_files):
    mirrors = [closed_port_url(), url(server, "missing"), url(server, "error"), url(server, "good")]
    dataset = load_dataset("mnist", mirrors=mirrors, verbose=False)
    assert dataset.source == "download" and dataset.location == cache.resolve()
    assert dataset.x_train.shape == (60000, 28, 28) and np.bincount(dataset.y_test).tolist() == MNIST_TEST_COUNTS
    assert cache_listing(cache) == sorted(FILENAMES)
    for filename in FILENAMES:
        assert (cache / filename).read_bytes() == real_files[filename]
        # the closed port is not in the log; the two bad mirrors were asked before the good one
        positions = [server.requests.index(f"/{prefix}/{filename}") for prefix in ("missing", "error", "good")]
        assert positions == sorted(positions)

    server.requests.clear()
    again = load_dataset("mnist", mirrors=mirrors, verbose=False)
    assert again.source == "cache" and server.requests == []


def test_mirrors_can_be_set_in_the_environment(server, cache_without_labels, monkeypatch, real_files):
    monkeypatch.setenv("MINICNN_MNIST_MIRRORS", f"{closed_port_url()}, {url(server, 'good')}")
    dataset = load_dataset("mnist", verbose=False)
    assert dataset.source == "download"
    assert server.requests == [f"/good/{LABELS}"]
    assert (cache_without_labels / LABELS).read_bytes() == real_files[LABELS]


BAD_MIRRORS = {
    "missing": "HTTP 404",
    "error": "HTTP 500",
    "cut": "truncated response: received",
    "short": "truncated gzip stream",
    "corrupt": "checksum mismatch: the decompressed download has MD5",
    "garbage": "damaged gzip data",
}


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_bad_download_is_never_left_in_the_cache(server, cache_without_labels, bad):
    before = cache_listing(cache_without_labels)
    with pytest.raises(DataNotFound, match=BAD_MIRRORS[bad]) as caught:
        load_dataset("mnist", mirrors=[url(server, bad)], allow_sample=False, verbose=False)
    assert f"{url(server, bad)}{LABELS}" in str(caught.value)
    assert cache_listing(cache_without_labels) == before  # no t10k-labels, no temporary file


@pytest.mark.parametrize("bad", BAD_MIRRORS)
def test_a_good_mirror_after_a_bad_one_is_used(server, cache_without_labels, bad, real_files):
    # locate_files downloads and checks the checksum, without reading the other three (large) files.
    files = locate_files("mnist", mirrors=[url(server, bad), url(server, "good")], verbose=False)
    assert files.source == "download" and files.urls == {"test_labels": f"{url(server, 'good')}{LABELS}"}
    assert server.requests == [f"/{bad}/{LABELS}", f"/good/{LABELS}"]
    assert cache_listing(cache_without_labels) == sorted(FILENAMES)
    assert (cache_without_labels / LABELS).read_bytes() == real_files[LABELS]


def test_a_stalled_mirror_times_out_quickly(server, cache_without_labels):
    started = time.perf_counter()
    files = locate_files("mnist", mirrors=[url(server, "stall"), url(server, "good")], timeout=0.5, verbose=False)
    assert time.perf_counter() - started < 5
    assert files.source == "download"
    assert cache_listing(cache_without_labels) == sorted(FILENAMES)


def test_a_failed_download_falls_back_to_the_sample(server, cache_without_labels):
    with pytest.warns(UserWarning, match="bundled sample"):
        dataset = load_dataset("mnist", mirrors=[url(server, "corrupt")], verbose=False)
    assert dataset.is_sample
    assert LABELS not in cache_listing(cache_without_labels)


def test_a_damaged_cache_file_is_downloaded_again(server, cache_without_labels, real_files):
    # A cached file that no longer matches its checksum (as if the disk had flipped a bit).
    payload = bytearray(gzip.decompress(real_files[LABELS]))
    payload[100] = (payload[100] + 1) % 10
    (cache_without_labels / LABELS).write_bytes(gzip.compress(bytes(payload), compresslevel=1))

    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_dataset("mnist", download=False, verbose=False)

    with pytest.warns(UserWarning, match=r"checksum mismatch.*Removing it from the cache"):
        dataset = load_dataset("mnist", mirrors=[url(server, "good")], verbose=False)
    assert dataset.source == "download"
    assert (cache_without_labels / LABELS).read_bytes() == real_files[LABELS]


def test_verbose_download_reports_progress_and_failures(server, cache_without_labels, capsys):
    load_dataset("mnist", mirrors=[url(server, "missing"), url(server, "good")], verbose=True)
    err = capsys.readouterr().err
    assert f"mnist_loader: downloading {url(server, 'good')}{LABELS}" in err
    assert f"mnist_loader: {url(server, 'missing')}{LABELS} failed: HTTP 404" in err
    assert "mnist_loader: full MNIST from" in err and "(downloaded to the cache)" in err


def test_cli_names_the_url_of_downloaded_files(server, cache_without_labels, monkeypatch, capsys):
    monkeypatch.setenv("MINICNN_MNIST_MIRRORS", url(server, "good"))
    assert cli_main([]) == 0
    output = capsys.readouterr().out
    assert f"source: {url(server, 'good')}{LABELS}  OK md5 {MNIST.file('test_labels').payload_md5}" in output
    assert f"{cache_without_labels}" in output

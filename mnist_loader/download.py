"""Downloading data files from public mirrors into the cache, safely.

Each file is streamed into a temporary file next to its final place, its decompressed payload is checked
against the known MD5, and only then is it moved into place with os.replace (atomic on one file system).
A file that fails its checksum, arrives truncated, or is interrupted is deleted, never left in the cache.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from .catalog import DatasetSpec, FileSpec
from .checksums import md5_hex
from .errors import DataNotFound, DatasetError
from .idx import decompress_if_gzipped

# Seconds to wait for a connection or for the next block of data. Short, so an offline machine fails fast.
DEFAULT_TIMEOUT = 5.0
_CHUNK_SIZE = 1 << 20
# A whole download is bounded too, not only each read: it must finish within a deadline (DEADLINE_ENV, else
# MIN_DEADLINE seconds or the file's budget at ASSUMED_RATE bytes/s, whichever is longer), and after the first
# GRACE seconds it must average at least MIN_RATE bytes/s (a mirror sending one byte a second fails after GRACE s).
DEADLINE_ENV = "MINICNN_DOWNLOAD_DEADLINE"
MIN_DEADLINE = 60.0
ASSUMED_RATE = 20 * 1024
MIN_RATE = 2 * 1024
GRACE = 10.0
_USER_AGENT = "minicnn-mnist-loader"


def resolve_mirrors(spec: DatasetSpec, mirrors: str | Sequence[str] | None = None) -> list[str]:
    """The base URLs to try, in order.

    `mirrors` (a list, or one string of URLs separated by commas or spaces) wins; else the environment
    variable `spec.mirrors_env` (e.g. MINICNN_MNIST_MIRRORS) in the same string form; else the defaults.
    """
    if mirrors is None:
        mirrors = os.environ.get(spec.mirrors_env) or spec.mirrors
    if isinstance(mirrors, str):
        mirrors = mirrors.replace(",", " ").split()
    return [base if base.endswith("/") else base + "/" for base in mirrors]


def payload_limit(file_spec: FileSpec) -> int:
    """The most bytes the file may hold once decompressed: its known IDX size (header + ubyte data, from the
    catalog's shape) with room to spare, so a wrong file still gets its specific error message, never a bomb."""
    expected = 4 + 4 * len(file_spec.shape) + math.prod(file_spec.shape)
    return 2 * expected + (1 << 20)


def byte_budget(file_spec: FileSpec) -> int:
    """The most bytes a mirror may send for the file: its IDX size plus gzip's worst-case overhead (deflate never
    grows data by more than ~0.1%), or the same uncompressed. More is refused while downloading."""
    expected = 4 + 4 * len(file_spec.shape) + math.prod(file_spec.shape)
    return expected + expected // 100 + (64 << 10)


def download_deadline(file_spec: FileSpec) -> float:
    """Seconds one file's download may take in all (see DEADLINE_ENV)."""
    configured = os.environ.get(DEADLINE_ENV, "").strip()
    if configured:
        try:
            value = float(configured)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value) or value <= 0:
            raise DatasetError(f"{DEADLINE_ENV}={configured!r} is not a number of seconds > 0")
        return value
    return max(MIN_DEADLINE, byte_budget(file_spec) / ASSUMED_RATE)


def download_file(
    spec: DatasetSpec,
    file_spec: FileSpec,
    directory: Path,
    mirrors: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
    deadline: float | None = None,
) -> tuple[Path, str]:
    """Download one file into `directory`, trying each mirror in turn; return (path, URL used).

    Raises DataNotFound, listing every mirror's failure, if no mirror delivered a file with the right checksum.
    Each mirror gets `deadline` seconds in all (default: download_deadline) and at most byte_budget bytes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / file_spec.filename
    failures = []
    for base in mirrors:
        url = base + file_spec.filename
        try:
            _fetch_verified(url, destination, spec, file_spec, timeout=timeout, verbose=verbose,
                            deadline=download_deadline(file_spec) if deadline is None else deadline)
        except (OSError, HTTPException, ValueError) as error:  # ValueError: DatasetError or a malformed URL
            reason = _describe_failure(error)
            failures.append(f"{url}: {reason}")
            if verbose:
                print(f"mnist_loader: {url} failed: {reason}", file=sys.stderr)
            continue
        return destination, url
    tried = "\n  ".join(failures) if failures else "(no mirrors configured)"
    raise DataNotFound(
        f"could not download {spec.title} {file_spec.filename}; every mirror failed:\n  {tried}\n"
        f"Check your internet connection, or set {spec.mirrors_env} to other mirrors, or download the files "
        f"yourself and point MINICNN_DATA at the directory holding {spec.name}/."
    )


def _fetch_verified(
    url: str, destination: Path, spec: DatasetSpec, file_spec: FileSpec, *, timeout: float, verbose: bool,
    deadline: float = MIN_DEADLINE,
) -> None:
    """Stream `url` into a temporary file, check its payload MD5, then move it to `destination`."""
    handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as output:
            _stream(url, output, timeout=timeout, verbose=verbose, label=file_spec.filename,
                    deadline=deadline, budget=byte_budget(file_spec))
        payload = decompress_if_gzipped(temporary.read_bytes(), "downloaded data", limit=payload_limit(file_spec))
        actual_md5 = md5_hex(payload)
        if actual_md5 != file_spec.payload_md5:
            raise DatasetError(
                f"checksum mismatch: the decompressed download has MD5 {actual_md5}, but {spec.title} "
                f"{file_spec.raw_filename} has MD5 {file_spec.payload_md5}; the download was discarded"
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)  # a no-op after a successful os.replace


def _stream(url: str, output, *, timeout: float, verbose: bool, label: str, deadline: float = MIN_DEADLINE,
            budget: int | None = None) -> None:
    """Copy the body of `url` into the open binary file `output`, with a progress bar when verbose; a DatasetError
    once `deadline` seconds have passed, the average rate falls under MIN_RATE after GRACE seconds, or more than
    `budget` bytes come (announced or sent)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    start = time.monotonic()
    with _open_within(request, min(timeout, deadline), min(deadline, GRACE + timeout)) as response:
        if verbose:
            print(f"mnist_loader: downloading {url}", file=sys.stderr)
        length_header = response.headers.get("Content-Length")
        expected = int(length_header) if length_header and length_header.isdigit() else None
        if budget is not None and expected is not None and expected > budget:
            raise DatasetError(f"the mirror announces {expected:,} bytes, more than the {budget:,} this file can take; "
                               "nothing was downloaded")
        received = 0
        with tqdm(
            total=expected, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not verbose, file=sys.stderr, leave=False,
        ) as progress:
            while chunk := response.read1(_CHUNK_SIZE):  # read1: whatever has arrived, so the clock is looked at
                output.write(chunk)
                received += len(chunk)
                progress.update(len(chunk))
                _check_progress(received, time.monotonic() - start, deadline, budget)
    if expected is not None and received != expected:
        raise DatasetError(
            f"truncated response: received {received:,} of {expected:,} bytes before the connection closed; "
            f"the download was discarded"
        )


def _open_within(request, timeout: float, seconds: float):
    """urllib.request.urlopen, but a DatasetError if the status line and headers have not all arrived within
    `seconds`: each read's timeout does not bound a server that drips its headers a byte at a time. (The opening
    thread is left behind, a daemon, until the server gives up.)"""
    outcome = {}

    def open_url():
        try:
            outcome["response"] = urllib.request.urlopen(request, timeout=timeout)
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    opener = threading.Thread(target=open_url, daemon=True, name="mnist_loader-open")
    opener.start()
    opener.join(seconds)
    if opener.is_alive():
        raise DatasetError(f"the mirror did not send its response headers within {seconds:.0f} s; abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["response"]


def _check_progress(received: int, elapsed: float, deadline: float, budget: int | None) -> None:
    """DatasetError if a download has gone on too long, too slowly, or too far (see _stream)."""
    if budget is not None and received > budget:
        raise DatasetError(f"the mirror sent over {budget:,} bytes, more than this file can take; the download was "
                           "discarded")
    if elapsed > deadline:
        raise DatasetError(f"the download took over {deadline:.0f} s in all ({received:,} bytes received) and was "
                           f"abandoned; on a slow connection set {DEADLINE_ENV} to more seconds")
    if elapsed > GRACE and received < MIN_RATE * elapsed:
        raise DatasetError(f"the mirror is too slow: {received:,} bytes in {elapsed:.0f} s (under {MIN_RATE:,} bytes/s); "
                           "the download was abandoned")


def _describe_failure(error: BaseException) -> str:
    """A short, readable reason for a failed download attempt."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error)

"""Downloading data files from public mirrors into the cache, safely.

Each file is streamed into a temporary file next to its final place, its decompressed payload is checked
against the known MD5, and only then is it moved into place with os.replace (atomic on one file system).
A file that fails its checksum, arrives truncated, or is interrupted is deleted, never left in the cache.
"""

from __future__ import annotations

import os
import sys
import tempfile
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


def download_file(
    spec: DatasetSpec,
    file_spec: FileSpec,
    directory: Path,
    mirrors: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    verbose: bool = True,
) -> tuple[Path, str]:
    """Download one file into `directory`, trying each mirror in turn; return (path, URL used).

    Raises DataNotFound, listing every mirror's failure, if no mirror delivered a file with the right checksum.
    """
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / file_spec.filename
    failures = []
    for base in mirrors:
        url = base + file_spec.filename
        try:
            _fetch_verified(url, destination, spec, file_spec, timeout=timeout, verbose=verbose)
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
    url: str, destination: Path, spec: DatasetSpec, file_spec: FileSpec, *, timeout: float, verbose: bool
) -> None:
    """Stream `url` into a temporary file, check its payload MD5, then move it to `destination`."""
    handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as output:
            _stream(url, output, timeout=timeout, verbose=verbose, label=file_spec.filename)
        payload = decompress_if_gzipped(temporary.read_bytes(), "downloaded data")
        actual_md5 = md5_hex(payload)
        if actual_md5 != file_spec.payload_md5:
            raise DatasetError(
                f"checksum mismatch: the decompressed download has MD5 {actual_md5}, but {spec.title} "
                f"{file_spec.raw_filename} has MD5 {file_spec.payload_md5}; the download was discarded"
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)  # a no-op after a successful os.replace


def _stream(url: str, output, *, timeout: float, verbose: bool, label: str) -> None:
    """Copy the body of `url` into the open binary file `output`, with a progress bar when verbose."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if verbose:
            print(f"mnist_loader: downloading {url}", file=sys.stderr)
        length_header = response.headers.get("Content-Length")
        expected = int(length_header) if length_header and length_header.isdigit() else None
        received = 0
        with tqdm(
            total=expected, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
            disable=not verbose, file=sys.stderr, leave=False,
        ) as progress:
            while chunk := response.read(_CHUNK_SIZE):
                output.write(chunk)
                received += len(chunk)
                progress.update(len(chunk))
    if expected is not None and received != expected:
        raise DatasetError(
            f"truncated response: received {received:,} of {expected:,} bytes before the connection closed; "
            f"the download was discarded"
        )


def _describe_failure(error: BaseException) -> str:
    """A short, readable reason for a failed download attempt."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error)

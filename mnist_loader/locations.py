"""Where data files are looked for on disk: an explicit directory, MINICNN_DATA, and the per-user cache."""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import DatasetSpec

DATA_ENV = "MINICNN_DATA"  # a directory holding mnist/ and fashion-mnist/
CACHE_ENV = "MINICNN_CACHE"  # overrides the cache directory (tests point it at a temporary directory)


def cache_root() -> Path:
    """The per-user cache: $MINICNN_CACHE, else $XDG_CACHE_HOME/minicnn, else ~/.cache/minicnn."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg_cache).expanduser() if xdg_cache else Path.home() / ".cache"
    return base / "minicnn"


def cache_dir(spec: DatasetSpec) -> Path:
    """The cache directory of one data set, e.g. ~/.cache/minicnn/mnist."""
    return cache_root() / spec.name


def data_env_root() -> Path | None:
    """The directory named by $MINICNN_DATA, or None if the variable is unset or empty."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def files_in(directory: Path, spec: DatasetSpec) -> dict[str, Path]:
    """The data set's files present in `directory`, by role; each either gzipped or already decompressed."""
    found = {}
    for file_spec in spec.files:
        for name in (file_spec.filename, file_spec.raw_filename):
            candidate = directory / name
            if candidate.is_file():
                found[file_spec.role] = candidate
                break
    return found


def candidate_dirs(root: Path, spec: DatasetSpec) -> list[Path]:
    """Where a data set may sit under `root`: in `root` itself, or in its subdirectory named after the data set."""
    return [root, root / spec.name]


def find_complete_dir(root: Path, spec: DatasetSpec) -> tuple[Path, dict[str, Path]] | None:
    """The first of `candidate_dirs(root)` holding all four files, with their paths; None if there is none."""
    for directory in candidate_dirs(root, spec):
        found = files_in(directory, spec)
        if len(found) == len(spec.files):
            return directory, found
    return None


def describe_expected_files(spec: DatasetSpec) -> str:
    """A short list of the file names a data set directory must hold, for error messages."""
    return ", ".join(file_spec.filename for file_spec in spec.files) + ", gzipped or not"

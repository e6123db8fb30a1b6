"""Exceptions and warnings raised by mnist_loader."""

from __future__ import annotations

import os


class DatasetError(ValueError):
    """A data file is missing, damaged, or not what it claims to be.

    The message names the file (or directory) involved, says what is wrong with it, and says what to do.
    `path` is the offending file when there is a single one, else None.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.path = path


class DataNotFound(DatasetError):
    """No source had the data set: nothing on disk and the download was disabled or failed.

    This is the one error after which `load_dataset` may fall back to the bundled sample.
    """


class SampleDataWarning(UserWarning):
    """Issued when the full data set could not be found and the small bundled sample is used instead."""

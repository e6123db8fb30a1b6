"""MD5 checksums of IDX payloads (the decompressed bytes), checked against the catalog."""

from __future__ import annotations

import hashlib
import os

from .catalog import DatasetSpec, FileSpec
from .errors import DatasetError


def md5_hex(data: bytes) -> str:
    """The hexadecimal MD5 digest of `data` (used as a checksum, not for security)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def verify_md5(actual_md5: str, spec: DatasetSpec, file_spec: FileSpec, path: str | os.PathLike) -> None:
    """Raise DatasetError unless `actual_md5` is the known payload MD5 of `file_spec`."""
    if actual_md5 != file_spec.payload_md5:
        raise DatasetError(
            f"{path}: checksum mismatch: its decompressed data has MD5 {actual_md5}, but {spec.title} "
            f"{file_spec.raw_filename} has MD5 {file_spec.payload_md5}. The file is damaged or is not the "
            f"original {spec.title} file: delete it and download it again "
            f"(`python -m mnist_loader --dataset {spec.name}` checks every file).",
            path=path,
        )

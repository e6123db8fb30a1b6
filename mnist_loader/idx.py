"""Reading and writing IDX files, the format the MNIST family is distributed in.

An IDX file is a header followed by the array data, all big-endian:

    bytes 0-1   two zero bytes
    byte  2     data type code: 0x08 unsigned byte, 0x09 signed byte, 0x0B short (2 bytes),
                0x0C int (4 bytes), 0x0D float (4 bytes), 0x0E double (8 bytes)
    byte  3     number of dimensions
    then        one 4-byte unsigned big-endian size per dimension
    then        the data, in C (row-major) order

The files are usually gzipped; `read_idx` recognises gzip by its magic bytes, whatever the file is named.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from .errors import DatasetError

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_NAMES = {0x08: "ubyte", 0x09: "byte", 0x0B: "short", 0x0C: "int", 0x0D: "float", 0x0E: "double"}
_GZIP_MAGIC = b"\x1f\x8b"
_REPLACE_HINT = "Replace it with a fresh copy of the file (delete it and download it again)."
# The most bytes a file may hold once decompressed, unless the caller knows better (datasets.py passes each
# file's known size): a 3 MB gzip bomb stops here instead of filling the memory.
MAX_PAYLOAD_BYTES = 1 << 30


def read_payload(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """Return the IDX bytes of `path`, decompressing it first if it is gzipped; at most `limit` bytes
    (default MAX_PAYLOAD_BYTES) either way, checked before reading or while decompressing."""
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise DatasetError(
                    f"{path}: {size:,} bytes, more than the {limit:,} this file can hold. {_REPLACE_HINT}", path=path)
            content = handle.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found.", path=path) from None
    except OSError as error:
        message = f"{path}: cannot be read ({error}). Check the path and its permissions."
        raise DatasetError(message, path=path) from error
    return decompress_if_gzipped(content, path, limit=limit)


def decompress_if_gzipped(content: bytes, name: str | os.PathLike = "<bytes>", limit: int | None = None) -> bytes:
    """Return `content` decompressed if it starts with the gzip magic bytes, else unchanged.

    Decompression stops with a DatasetError as soon as the output would exceed `limit` bytes (default
    MAX_PAYLOAD_BYTES): never more than that is allocated. `name` (a path or URL) is only used in error messages.
    """
    if not content.startswith(_GZIP_MAGIC):
        return content
    limit = MAX_PAYLOAD_BYTES if limit is None else limit
    try:
        return _bounded_gunzip(content, limit, name)
    except EOFError:
        raise DatasetError(
            f"{name}: truncated gzip stream: the data ends before the end of the compressed stream, "
            f"so it was cut short (for example by an interrupted download). {_REPLACE_HINT}",
            path=name,
        ) from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise DatasetError(f"{name}: damaged gzip data ({error}). {_REPLACE_HINT}", path=name) from None


def _bounded_gunzip(content: bytes, limit: int, name) -> bytes:
    """gzip.decompress, member after member, stopping once more than `limit` bytes would come out."""
    output = bytearray()
    data = content
    while data:
        if not data.startswith(_GZIP_MAGIC):
            if data.strip(b"\x00"):  # gzip.decompress also ignores trailing zero padding
                raise gzip.BadGzipFile("trailing garbage after the gzip stream")
            break
        stream = zlib.decompressobj(wbits=31)
        chunk = stream.decompress(data, limit + 1 - len(output))
        output += chunk
        if len(output) > limit or stream.unconsumed_tail:
            raise DatasetError(
                f"{name}: decompresses to more than {limit:,} bytes, more than this file can hold (a damaged file or a "
                f"decompression bomb); decompression was stopped there. {_REPLACE_HINT}", path=name)
        if not stream.eof:
            raise EOFError
        data = stream.unused_data
    return bytes(output)


def parse_idx(payload: bytes, name: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a NumPy array (native byte order, writable).

    `name` is only used in error messages; pass the file's path.
    Raises DatasetError if the header is malformed or disagrees with the amount of data.
    """
    if len(payload) < 4:
        raise DatasetError(
            f"{name}: truncated file: it is only {len(payload)} bytes long, too short for the 4-byte IDX "
            f"magic number. {_REPLACE_HINT}",
            path=name,
        )
    zeros, type_code, ndim = payload[0:2], payload[2], payload[3]
    if zeros != b"\x00\x00":
        magic = int.from_bytes(payload[0:4], "big")
        raise DatasetError(
            f"{name}: wrong magic number 0x{magic:08X}: an IDX file starts with two zero bytes, a type byte "
            f"and a dimension count (0x00000803 for images, 0x00000801 for labels). Check that this is the "
            f"right file; if it is, it is damaged. {_REPLACE_HINT}",
            path=name,
        )
    if type_code not in IDX_DTYPES:
        supported = ", ".join(f"0x{code:02X} {_TYPE_NAMES[code]}" for code in IDX_DTYPES)
        raise DatasetError(
            f"{name}: unsupported IDX data type code 0x{type_code:02X} (supported: {supported}). "
            f"The file is damaged or not an IDX file. {_REPLACE_HINT}",
            path=name,
        )
    if ndim == 0:
        raise DatasetError(
            f"{name}: the IDX header declares 0 dimensions. The file is damaged. {_REPLACE_HINT}", path=name
        )

    header_length = 4 + 4 * ndim
    if len(payload) < header_length:
        raise DatasetError(
            f"{name}: truncated file: the header declares {ndim} dimensions, which take {header_length} bytes, "
            f"but the file is only {len(payload)} bytes long. {_REPLACE_HINT}",
            path=name,
        )
    shape = struct.unpack(f">{ndim}I", payload[4:header_length])
    dtype = IDX_DTYPES[type_code]
    expected_bytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual_bytes = len(payload) - header_length
    described = f"{' x '.join(map(str, shape))} {_TYPE_NAMES[type_code]} ({expected_bytes:,} data bytes)"
    if actual_bytes < expected_bytes:
        raise DatasetError(
            f"{name}: truncated file: the header declares {described}, but only {actual_bytes:,} data bytes "
            f"follow. {_REPLACE_HINT}",
            path=name,
        )
    if actual_bytes > expected_bytes:
        raise DatasetError(
            f"{name}: the dimensions disagree with the file length: the header declares {described}, but "
            f"{actual_bytes:,} data bytes follow ({actual_bytes - expected_bytes:,} too many). "
            f"The file is damaged or was written wrongly. {_REPLACE_HINT}",
            path=name,
        )
    array = np.frombuffer(payload, dtype=dtype, offset=header_length).reshape(shape)
    # astype copies: the result is writable (like keras.datasets) and in native byte order.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a raw or gzipped IDX file into a NumPy array."""
    return parse_idx(read_payload(path), path)


def encode_idx(array: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of `parse_idx`)."""
    array = np.asarray(array)
    for type_code, dtype in IDX_DTYPES.items():
        if array.dtype == dtype.newbyteorder("=") or array.dtype == dtype:
            break
    else:
        raise ValueError(f"IDX cannot store {array.dtype}; use uint8, int8, int16, int32, float32 or float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()

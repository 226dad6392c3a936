"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

A header's dimensions are checked against the file before anything is allocated: a raw file must be exactly
header + prod(dims) * itemsize bytes long; a gzip file may claim at most MAX_GZIP_RATIO times its compressed
size (deflate cannot do better than about 1032:1), and is read in chunks that stop at the real end of the
stream, so memory follows the data actually present, never the header's claim.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from cnn_core._validation import check_path

# IDX type code -> big-endian NumPy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_GZIP_RATIO = 1032  # deflate's largest possible expansion: a larger claim cannot be backed by the file


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_bytes(path: str, limit: int) -> bytes:
    """Read at most `limit` bytes of the (decompressed) file."""
    opener = gzip.open if _is_gzip(path) else open
    chunks, n = [], 0
    try:
        with opener(path, "rb") as f:
            # Chunked, so a corrupt header claiming terabytes costs only what the file really holds.
            while n < limit:
                chunk = f.read(min(limit - n, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                n += len(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt gzip stream ({e})") from None
    return b"".join(chunks)


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file into an array of its native dtype (uint8 for MNIST images and labels).

    The header (two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
    uint32) is checked, and the payload must hold exactly prod(dims) elements: a truncated file, trailing
    bytes or a foreign file raise ValueError naming the file and what is wrong.
    """
    path = check_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such IDX file")
    head = _read_bytes(path, 4)
    if len(head) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(head)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", head)
    if zero != 0 or code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (magic 0x{head.hex()}: expected 0x0000 then a type code "
                         f"in {sorted(hex(c) for c in _IDX_DTYPES)})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    header = _read_bytes(path, header_len)
    if len(header) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(header)} of {header_len} bytes)")
    dims = struct.unpack(f">{ndim}I", header[4:])
    dtype = _IDX_DTYPES[code]
    count = math.prod(dims)  # Python ints: a corrupt header cannot overflow this
    n_bytes = count * dtype.itemsize
    size = os.path.getsize(path)
    if _is_gzip(path):
        if n_bytes > MAX_GZIP_RATIO * size:
            raise ValueError(f"{path}: IDX dimensions {dims} need {n_bytes} bytes, more than a {size}-byte gzip "
                             f"file can hold (at most {MAX_GZIP_RATIO}x)")
    elif size != header_len + n_bytes:
        what = "truncated IDX data" if size < header_len + n_bytes else "unexpected bytes after the IDX data"
        raise ValueError(f"{path}: {what}: dimensions {dims} need {n_bytes} bytes, found {size - header_len}")
    # Read one byte past the payload, to detect trailing data without reading the whole tail.
    raw = _read_bytes(path, header_len + n_bytes + 1)
    payload = len(raw) - header_len
    if payload < n_bytes:
        raise ValueError(f"{path}: truncated IDX data: dimensions {dims} need {n_bytes} bytes, found {payload}")
    if payload > n_bytes:
        raise ValueError(f"{path}: unexpected bytes after the IDX data of dimensions {dims}")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_len)
    return data.reshape(dims).astype(dtype.newbyteorder("="))
